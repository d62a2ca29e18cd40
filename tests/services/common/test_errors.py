"""`ApiError` (`services/common/errors.py`): one JSON error shape, `{"error", "message"}`, with its status and headers."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.testclient import TestClient

from services.common.errors import ApiError, add_api_error_handler


def app_raising(error: ApiError) -> FastAPI:
    app = FastAPI()
    add_api_error_handler(app)

    @app.get("/fail")
    async def fail() -> None:
        raise error

    return app


def test_an_api_error_is_json_with_its_status_code_and_message() -> None:
    response = TestClient(app_raising(ApiError(409, "note_limit_reached", "You already have 100 notes."))).get("/fail")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "note_limit_reached", "message": "You already have 100 notes."}


def test_an_api_error_carries_its_headers() -> None:
    error = ApiError(503, "busy", "Try again in a few seconds.", headers={"retry-after": "5"})
    response = TestClient(app_raising(error)).get("/fail")
    assert (response.status_code, response.headers["retry-after"]) == (503, "5")
    assert response.json() == {"error": "busy", "message": "Try again in a few seconds."}


def test_the_error_code_is_the_exception_text() -> None:
    error = ApiError(400, "invalid_request", "The request is malformed.")
    assert (str(error), error.error, error.headers) == ("invalid_request", "invalid_request", {})
