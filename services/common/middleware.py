"""ASGI middleware both services use (plain ASGI: no per-request task or body buffering)."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logs import correlation_id

# Sent on every response. Pages after the AgentCore redirect must not leak the URL (Referer), be
# cached, framed or sniffed; the CSP is per app because the agent UI loads its own script.
BASE_SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
)

_access_log = logging.getLogger("access")
_error_log = logging.getLogger("errors")


class SecurityHeadersMiddleware:
    """Adds the security headers and a Content-Security-Policy to every HTTP response.

    It also answers an unexpected exception with a bare 500 that still carries the headers (Starlette's
    own error response is produced outside user middleware), logging the exception type only.
    """

    def __init__(self, app: ASGIApp, *, content_security_policy: str, extra: Iterable[tuple[str, str]] = ()) -> None:
        self.app = app
        headers = [*BASE_SECURITY_HEADERS, ("content-security-policy", content_security_policy), *extra]
        self._headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        self._names = {name for name, _ in self._headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                existing = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self._names]
                message["headers"] = existing + self._headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            _error_log.error("unhandled_error", extra={"event": "unhandled_error", "error_type": type(exc).__name__})
            if started:
                raise
            body = b"Something went wrong on our side. Nothing was changed; please try again."
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})


class AccessLogMiddleware:
    """One line per request: method, path (never the query string), status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            if _access_log.isEnabledFor(logging.INFO):
                _access_log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"][:256],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )


# The X-Ray trace id format the ALB writes into X-Amzn-Trace-Id (`Root=1-<8 hex time>-<24 hex random>`).
_TRACE_ROOT = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")
MAX_TRACE_HEADER_CHARS = 512  # the ALB allows 7 KB of trace header; ours needs far less
CORRELATION_HEADER = "x-correlation-id"


def correlation_id_from(trace_header: str | None) -> str | None:
    """The `Root=` of an X-Amzn-Trace-Id header, only when the header is short and the id well formed.

    A client may send its own header (the ALB keeps its Root and adds `Self=`): the value is an
    opaque label for finding log lines, never trusted for anything else, so only its shape is checked.
    """
    if not trace_header or len(trace_header) > MAX_TRACE_HEADER_CHARS or not trace_header.isascii():
        return None
    for field in trace_header.split(";"):
        name, _, value = field.strip().partition("=")
        if name == "Root":
            return value if _TRACE_ROOT.fullmatch(value) else None
    return None


def new_correlation_id() -> str:
    """An id in the trace id format, so that ours and the ALB's look alike in searches."""
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


class CorrelationIdMiddleware:
    """Sets the request's correlation id for every log line and metric, and returns it as `X-Correlation-Id`.

    The id is the ALB's trace root when the request carries a valid one, else a new one. Outermost, so
    that even the line about an unhandled error carries it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace = [value for name, value in scope.get("headers", []) if name == b"x-amzn-trace-id"]
        current = (correlation_id_from(trace[0].decode("latin-1")) if len(trace) == 1 else None) or new_correlation_id()
        header = (CORRELATION_HEADER.encode("latin-1"), current.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*[(k, v) for k, v in message.get("headers", []) if k.lower() != header[0]], header]
            await send(message)

        token = correlation_id.set(current)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)
