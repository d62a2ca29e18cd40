"""Reading a JSON request body within a size bound, before anything parses it: the media type first, then the
declared length, then the bytes as they arrive (a body that lies about its length is cut off at the bound)."""

from __future__ import annotations

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
