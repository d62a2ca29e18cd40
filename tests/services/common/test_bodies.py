"""services/common/bodies.py: the media type, the declared length and the bytes, each refused with the caller's error."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from services.common.bodies import read_json_body
from services.common.errors import ApiError, add_api_error_handler

LIMIT = 16


def client(*, strict_length: bool) -> TestClient:
    app = FastAPI()
    add_api_error_handler(app)

    @app.post("/")
    async def echo(request: Request) -> dict[str, int]:
        body = await read_json_body(
            request,
            max_bytes=LIMIT,
            wrong_type=ApiError(415, "wrong_type", "json please"),
            too_large=ApiError(413, "too_large", "too big"),
            strict_length=strict_length,
        )
        return {"bytes": len(body)}

    return TestClient(app)


@pytest.mark.parametrize("strict_length", [True, False])
def test_a_json_body_within_the_bound_is_returned_whole(strict_length: bool) -> None:
    answer = client(strict_length=strict_length).post("/", content=b'{"a": 1}', headers={"content-type": "application/json; charset=utf-8"})
    assert (answer.status_code, answer.json()) == (200, {"bytes": 8})


@pytest.mark.parametrize("strict_length", [True, False])
def test_another_media_type_is_refused_before_the_length(strict_length: bool) -> None:
    answer = client(strict_length=strict_length).post("/", content=b"x" * 100, headers={"content-type": "text/plain"})
    assert (answer.status_code, answer.json()["error"]) == (415, "wrong_type")


@pytest.mark.parametrize("strict_length", [True, False])
def test_a_body_over_the_bound_is_refused_declared_or_not(strict_length: bool) -> None:
    answer = client(strict_length=strict_length).post("/", content=b"[" + b"1," * 20 + b"1]", headers={"content-type": "application/json"})
    assert (answer.status_code, answer.json()["error"]) == (413, "too_large")


def test_a_malformed_declared_length_counts_as_too_large_only_when_strict() -> None:
    def send(strict: bool) -> int:
        answer = client(strict_length=strict).post("/", content=b"{}", headers={"content-type": "application/json", "content-length": "2 "})
        return int(answer.status_code)

    assert send(True) == 413
    assert send(False) == 200  # ignored: the bytes alone are counted
