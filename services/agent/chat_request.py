"""The body of `POST /api/chat`: read within a size bound, then checked, before the model sees any of it."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.agent.settings import AgentSettings
from services.common.bodies import read_json_body
from services.common.errors import ApiError

MAX_BODY_BYTES = 256 * 1024


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class HistoryItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    text: str = Field(min_length=1, max_length=4000)
    _text = field_validator("text")(_not_blank)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=4000)
    history: list[HistoryItem] = Field(default_factory=list, max_length=20)
    # The `flow` of the start link the person followed before this request came back: the agent asks that
    # consent session how it ended (declined: it says so instead of asking again). Signed by the agent; a
    # token that is not this person's, or has expired, is ignored.
    after_consent: str | None = Field(default=None, min_length=1, max_length=4096)
    _message = field_validator("message")(_not_blank)


async def read_chat_request(request: Request, settings: AgentSettings) -> ChatRequest:
    too_large = ApiError(413, "too_large", f"The request is larger than {MAX_BODY_BYTES // 1024} KiB.")
    body = await read_json_body(
        request,
        max_bytes=MAX_BODY_BYTES,
        wrong_type=ApiError(415, "unsupported_media_type", "Send the request as application/json."),
        too_large=too_large,
        strict_length=True,
    )
    try:
        parsed = ChatRequest.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", readable(exc.errors())) from None
    if len(parsed.message) > settings.max_message_chars:
        raise ApiError(400, "invalid_request", f"message: at most {settings.max_message_chars} characters.")
    return parsed


def readable(errors: Any) -> str:
    """Pydantic errors as one line a person can act on, without echoing their input back."""
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)
