"""JSON logs, one object per line, with nothing secret in them.

* Our own code never logs tokens, cookie values or session ids; security events carry digests.
* SDK and HTTP client loggers are capped at WARNING whatever LOG_LEVEL says: at DEBUG botocore
  prints request bodies (sessionUri, user ids, tokens).
* A last-line filter redacts anything shaped like a session URI, a JWT or one of our signed values.
* uvicorn's access log is replaced by ours, which never includes the query string.
* Every line written while a request is handled carries that request's `correlation_id` (see
  `CorrelationIdMiddleware`): a context variable, so it follows the request into tasks it starts and
  into worker threads (anyio copies the context), the AgentCore and Bedrock calls included.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import IO, Any

from services.common.signed import b64url, digest

SECURITY_LOGGER = "security"
_HANDLER_NAME = "agentcore-json"
_NOISY = ("botocore", "boto3", "urllib3", "s3transfer", "httpx", "httpcore", "hpack", "asyncio", "multipart")
_REDACTIONS = (
    (re.compile(r"urn:ietf:params:oauth:request_uri:[^\s\"'&<>]+"), "urn:ietf:params:oauth:request_uri:[redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9_=-]{4,}\.[A-Za-z0-9_=-]{4,}\.[A-Za-z0-9_=-]*"), "[redacted-jwt]"),
    (re.compile(r"v1\.[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{20,}"), "[redacted-signed]"),
)
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

# The id of the request being handled; set only by `CorrelationIdMiddleware`.
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = correlation_id.get()
        if current is not None:
            entry["correlation_id"] = current
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__  # the type only: messages can quote request data
        return redact(json.dumps(entry, default=str, separators=(",", ":")))


def configure_logging(level: str = "INFO", *, stream: IO[str] | None = None) -> None:
    """Route every logger (ours, uvicorn's) to one JSON handler on stdout."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace our previous handler (a second app in one process); leave others, e.g. a test's capture.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False  # it prints the query string; see AccessLogMiddleware
    access.disabled = True


_digest_key: bytes | None = None


def set_digest_key(key: bytes) -> None:
    """Key the digests in logs, so that someone holding a list of users cannot link log lines to them."""
    global _digest_key  # noqa: PLW0603 - one process-wide setting, made once at start
    _digest_key = key


def hashed(value: str | None) -> str | None:
    """The digest logged in place of a user or session id (keyed once `set_digest_key` ran)."""
    if value is None:
        return None
    if _digest_key is None:
        return digest(value, 9)
    return b64url(hmac.new(_digest_key, value.encode("utf-8"), hashlib.sha256).digest()[:9])


def security_event(
    event: str, *, reason: str, status: int, user_key: str | None = None, session_uri: str | None = None, **fields: Any
) -> None:
    """One structured line per security decision: reason code and digests, never the values."""
    logging.getLogger(SECURITY_LOGGER).warning(
        event,
        extra={"event": event, "reason": reason, "status": status, "user": hashed(user_key), "session": hashed(session_uri), **fields},
    )
