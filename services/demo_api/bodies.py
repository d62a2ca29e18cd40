"""The bodies of `POST /notes` and `POST /tasks`: read within a size bound, strict JSON types, one sentence per problem."""

from __future__ import annotations

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.common.bodies import read_json_body
from services.common.errors import ApiError

MAX_NOTE_CHARS = 1000
MAX_TASK_CHARS = 200
MAX_BODY_BYTES = 8 * 1024


class _TextIn(BaseModel):
    """A body that is `{"text": ...}` and nothing else. Strict JSON types; any other field (a user id included) is refused."""

    model_config = ConfigDict(extra="forbid", strict=True)
    text: str

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain more than whitespace")
        return value


class NoteIn(_TextIn):
    """The body of `POST /notes`."""

    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class TaskIn(_TextIn):
    """The body of `POST /tasks`."""

    text: str = Field(min_length=1, max_length=MAX_TASK_CHARS)


async def json_body(request: Request) -> bytes:
    too_large = ApiError(400, "invalid_request", f"The body is larger than {MAX_BODY_BYTES} bytes.")
    return await read_json_body(
        request,
        max_bytes=MAX_BODY_BYTES,
        wrong_type=ApiError(415, "unsupported_media_type", "Send the body as JSON (Content-Type: application/json)."),
        too_large=too_large,
        strict_length=False,
    )


def note_in(body: bytes) -> NoteIn:
    try:
        return NoteIn.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", _describe(exc, max_chars=MAX_NOTE_CHARS)) from None


def task_in(body: bytes) -> TaskIn:
    try:
        return TaskIn.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", _describe(exc, max_chars=MAX_TASK_CHARS)) from None


def _describe(exc: ValidationError, *, max_chars: int) -> str:
    """One sentence naming each problem, e.g. "unknown field 'sub'" or "'text' must be 1 to 1000 characters"."""
    problems: list[str] = []
    for error in exc.errors(include_url=False)[:5]:
        field = ".".join(str(part) for part in error["loc"])[:40]
        kind = error["type"]
        if kind == "extra_forbidden":
            problems.append(f"unknown field '{field}' (send only 'text')")
        elif kind == "missing":
            problems.append(f"missing field '{field}'")
        elif kind in {"string_too_short", "string_too_long"}:
            problems.append(f"'{field}' must be 1 to {max_chars} characters")
        elif kind == "string_type":
            problems.append(f"'{field}' must be a string")
        elif kind == "json_invalid":
            problems.append("the body is not valid JSON")
        elif kind in {"model_type", "model_attributes_type"}:
            problems.append('the body must be a JSON object such as {"text": "..."}')
        elif kind == "value_error":
            problems.append(f"'{field}' {error['ctx']['error']}")
        else:
            problems.append(f"'{field}': {error['msg']}")
    return "Invalid body: " + "; ".join(problems) + "."
