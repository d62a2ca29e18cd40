"""Reading a JSON request body within a size bound, before anything parses it: the media type first, then the
declared length, then the bytes as they arrive (a body that lies about its length is cut off at the bound)."""

from __future__ import annotations

import json

from fastapi import Request

from services.common.errors import ApiError


async def read_json_body(request: Request, *, max_bytes: int, wrong_type: ApiError, too_large: ApiError, strict_length: bool) -> bytes:
    """The raw body, or `wrong_type` / `too_large` raised. With `strict_length`, a Content-Length that is not a
    plain number counts as too large; without it, such a header is ignored and the bytes alone are counted."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise wrong_type
    declared = request.headers.get("content-length")
    if declared is not None:
        plain = declared.isascii() and declared.isdigit()
        if (plain and int(declared) > max_bytes) or (strict_length and not plain):
            raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


async def read_empty_json(request: Request) -> None:
    """The body of a POST that needs no input: exactly `{}` as application/json. A cross-site form cannot
    send that, so such an endpoint needs no other CSRF token (as for /api/chat)."""
    body = await read_json_body(
        request,
        max_bytes=64,
        wrong_type=ApiError(415, "unsupported_media_type", "Send the request as application/json."),
        too_large=ApiError(413, "too_large", "The request is larger than 64 bytes."),
        strict_length=True,
    )
    try:
        if json.loads(body) != {}:
            raise ValueError
    except ValueError:
        raise ApiError(400, "invalid_request", "Send an empty JSON object: {}.") from None
