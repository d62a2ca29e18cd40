"""The bodies of `POST /notes` and `POST /tasks` (`services/demo_api/bodies.py`): strict JSON, one sentence naming each problem."""

from __future__ import annotations

import json

import pytest

from services.common.errors import ApiError
from services.demo_api.bodies import MAX_NOTE_CHARS, MAX_TASK_CHARS, note_in, task_in


def test_a_note_is_its_text() -> None:
    assert note_in(b'{"text": "buy milk"}').text == "buy milk"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"text": "x", "sub": "bob"}', "Invalid body: unknown field 'sub' (send only 'text')."),
        (b"{}", "Invalid body: missing field 'text'."),
        (b'{"text": ""}', f"Invalid body: 'text' must be 1 to {MAX_NOTE_CHARS} characters."),
        (b'{"text": 7}', "Invalid body: 'text' must be a string."),
        (b'{"text": "   "}', "Invalid body: 'text' must contain more than whitespace."),
        (b"[1]", 'Invalid body: the body must be a JSON object such as {"text": "..."}.'),
        (b"{", "Invalid body: the body is not valid JSON."),
    ],
)
def test_each_problem_is_named_in_one_sentence(body: bytes, message: str) -> None:
    with pytest.raises(ApiError) as refused:
        note_in(body)
    assert (refused.value.status, refused.value.error, refused.value.message) == (400, "invalid_request", message)


def test_a_task_is_its_text_of_at_most_200_characters() -> None:
    assert task_in(b'{"text": "water the plants"}').text == "water the plants"
    assert task_in(json.dumps({"text": "x" * MAX_TASK_CHARS}).encode()).text == "x" * MAX_TASK_CHARS
    assert MAX_TASK_CHARS == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (json.dumps({"text": "x" * 201}).encode(), "Invalid body: 'text' must be 1 to 200 characters."),
        (b'{"text": ""}', "Invalid body: 'text' must be 1 to 200 characters."),
        (b'{"text": "x", "done": true}', "Invalid body: unknown field 'done' (send only 'text')."),
        (b'{"text": " "}', "Invalid body: 'text' must contain more than whitespace."),
    ],
    ids=["too-long", "empty", "unknown-field", "blank"],
)
def test_each_task_body_problem_is_named_with_the_task_limit(body: bytes, message: str) -> None:
    with pytest.raises(ApiError) as refused:
        task_in(body)
    assert (refused.value.status, refused.value.error, refused.value.message) == (400, "invalid_request", message)
