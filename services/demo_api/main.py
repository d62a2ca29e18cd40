"""Demo resource API: per-user notes and a profile, for the agent to call on a signed-in person's behalf.

* `GET /profile` (scope `demo-api/profile.read`): `{"sub", "username"}` from the access token.
* `GET /notes` (scope `demo-api/notes.read`): `{"notes": [{"id", "text", "created_at"}]}`, the caller's only.
* `POST /notes` (scope `demo-api/notes.write`): `{"text"}` (1-1000 characters, nothing else) → 201 with
  the note; at most 100 notes per user (409 beyond).
* `GET /health`: constant, no token. Served locally and in tests only: API Gateway has no route to it.

The user is always the verified token's `sub`; no request field names a user. Every error is JSON
`{"error": <code>, "message": <text>}`: 400 malformed request, 401 (with `WWW-Authenticate: Bearer
error="invalid_token"`) no usable token, 403 (`error="insufficient_scope", scope="…"`) token without the
route's scope, 409 note limit, 503 with `Retry-After` when the signing keys or the table cannot be
reached (`temporarily_unavailable`) or the token's key is not loaded yet and the key set may not be
fetched again for a few seconds (`keys_refreshing`). See docs/demo-api.md.

Runs on Lambda behind an API Gateway HTTP API through Mangum (`services.demo_api.main.handler`) and,
the same `app`, under uvicorn locally (`services.demo_api.main:app`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from mangum import Mangum
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from services.common.health import router as health_router
from services.common.logs import configure_logging, security_event
from services.common.middleware import AccessLogMiddleware, SecurityHeadersMiddleware
from services.common.runtime import LazyRuntime
from services.demo_api.config import DemoApiSettings, load_demo_settings
from services.demo_api.notes import DynamoDbNotesStore, NoteLimitReached, NotesStore, StoreUnavailable
from services.demo_api.tokens import (
    AccessToken,
    AccessTokenVerifier,
    InvalidRequest,
    InvalidToken,
    JwksKeyStore,
    KeysRefreshing,
    KeysUnavailable,
    bearer_token,
)

SCOPE_PROFILE_READ = "demo-api/profile.read"
SCOPE_NOTES_READ = "demo-api/notes.read"
SCOPE_NOTES_WRITE = "demo-api/notes.write"
MAX_NOTES_PER_USER = 100
MAX_NOTE_CHARS = 1000
MAX_BODY_BYTES = 8 * 1024
RETRY_AFTER_S = 5
REALM = "demo-api"
CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"  # JSON only: nothing to load, nothing to frame


class ApiError(Exception):
    """An error answer: status, stable code, a sentence for people, extra headers."""

    def __init__(self, status: int, error: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}


class NoteIn(BaseModel):
    """The body of `POST /notes`. Strict JSON types; any other field (a user id included) is refused."""

    model_config = ConfigDict(extra="forbid", strict=True)
    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must contain more than whitespace")
        return value


@dataclass(frozen=True)
class Runtime:
    """Everything built once per process from the settings."""

    settings: DemoApiSettings
    verifier: AccessTokenVerifier
    store: NotesStore

    @classmethod
    def build(cls, settings: DemoApiSettings, clock: Callable[[], float]) -> Runtime:
        verifier = AccessTokenVerifier(
            issuer=settings.demo_issuer, client_id=settings.demo_client_id, keys=JwksKeyStore(settings.jwks_url), clock=clock
        )
        store: NotesStore = DynamoDbNotesStore(settings.notes_table, region=settings.aws_region)
        return cls(settings, verifier, store)


def create_app(load: Callable[[], DemoApiSettings] = load_demo_settings, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """The API as an ASGI app. Settings load at start-up under uvicorn, at the first request under Mangum."""

    def build() -> Runtime:
        settings = load()
        _configure_logging(settings.log_level)
        return Runtime.build(settings, clock)

    get_runtime = LazyRuntime(build)

    # redirect_slashes off: Starlette's slash redirect builds an absolute Location from the Host header.
    app = FastAPI(title="demo-api", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False, lifespan=get_runtime.lifespan)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, content_security_policy=CONTENT_SECURITY_POLICY)
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]  # Starlette types handlers loosely
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.include_router(health_router)
    app.include_router(router)
    app.state.runtime = get_runtime
    return app


def _configure_logging(level: str) -> None:
    """The project's JSON logs on stdout, and only those.

    The Lambda runtime installs its own root handler; left in place it would print every line a second
    time, in plain text and without the redaction filter of our JSON formatter.
    """
    configure_logging(level)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not type(h).__name__.startswith("LambdaLoggerHandler")]


# ---------------------------------------------------------------------------------------- who may call


def requires(scope: str) -> Any:
    """A dependency: the verified access token of this request, which must carry `scope`."""

    async def verified_token(request: Request) -> AccessToken:
        rt: Runtime = request.app.state.runtime()
        try:
            token = await _verify(rt.verifier, request.headers.getlist("authorization"))
        except InvalidRequest as exc:
            security_event("token_refused", reason=exc.reason, status=400)
            raise ApiError(
                400,
                "invalid_request",
                "Send exactly one Authorization header.",
                headers={"www-authenticate": f'Bearer realm="{REALM}", error="invalid_request"'},
            ) from None
        except KeysRefreshing as exc:
            # Not a 401: a client treats that as a revoked grant, and the key may simply be new.
            security_event("token_unchecked", reason=exc.reason, status=503)
            raise ApiError(
                503,
                "keys_refreshing",
                "The access token is signed with a key this API has not loaded yet. "
                f"Try again in {exc.retry_after_s} second{'' if exc.retry_after_s == 1 else 's'}.",
                headers={"retry-after": str(exc.retry_after_s)},
            ) from None
        except KeysUnavailable as exc:
            security_event("token_unchecked", reason=exc.reason, status=503)
            raise ApiError(
                503,
                "temporarily_unavailable",
                "The access token could not be checked right now. Try again in a few seconds.",
                headers={"retry-after": str(RETRY_AFTER_S)},
            ) from None
        except InvalidToken as exc:
            security_event("token_refused", reason=exc.reason, status=401)
            raise ApiError(
                401,
                "invalid_token",
                _INVALID_TOKEN_MESSAGES.get(exc.reason, "The access token is not valid for this API. Get a new one."),
                headers={"www-authenticate": f'Bearer realm="{REALM}", error="invalid_token"'},
            ) from None
        if scope not in token.scopes:
            security_event("token_refused", reason="insufficient_scope", status=403, user_key=token.sub, scope=scope)
            raise ApiError(
                403,
                "insufficient_scope",
                f"This request needs the scope {scope}, which the access token does not carry.",
                headers={"www-authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'},
            )
        return token

    return Depends(verified_token)


_INVALID_TOKEN_MESSAGES = {
    "missing_token": "Send an access token: 'Authorization: Bearer <token>'.",
    "not_bearer": "Send the access token with the Bearer scheme: 'Authorization: Bearer <token>'.",
    "expired": "The access token has expired. Get a new one.",
}


async def _verify(verifier: AccessTokenVerifier, authorization: list[str]) -> AccessToken:
    parsed = verifier.parse(bearer_token(authorization))
    key = verifier.keys.cached(parsed.kid)
    if key is None:
        key = await anyio.to_thread.run_sync(verifier.keys.get, parsed.kid)
    return verifier.verify_parsed(parsed, key)


ProfileReader = Annotated[AccessToken, requires(SCOPE_PROFILE_READ)]
NotesReader = Annotated[AccessToken, requires(SCOPE_NOTES_READ)]
NotesWriter = Annotated[AccessToken, requires(SCOPE_NOTES_WRITE)]


# ---------------------------------------------------------------------------------------- routes

router = APIRouter(tags=["demo-api"])


@router.get("/profile")
async def profile(token: ProfileReader) -> dict[str, str | None]:
    return {"sub": token.sub, "username": token.username}


@router.get("/notes")
async def list_notes(request: Request, token: NotesReader) -> dict[str, list[dict[str, str]]]:
    store: NotesStore = request.app.state.runtime().store
    notes = await _stored(functools.partial(store.list_notes, token.sub))
    return {"notes": [note.as_json() for note in notes]}


@router.post("/notes", status_code=201)
async def add_note(request: Request, token: NotesWriter) -> JSONResponse:
    # The body is read only after the token passed: an anonymous caller learns nothing about body rules.
    body = _note_in(await _json_body(request))
    store: NotesStore = request.app.state.runtime().store
    try:
        note = await _stored(functools.partial(store.add_note, token.sub, body.text, limit=MAX_NOTES_PER_USER))
    except NoteLimitReached:
        raise ApiError(
            409, "note_limit_reached", f"You already have {MAX_NOTES_PER_USER} notes, the most this demo keeps per person."
        ) from None
    return JSONResponse(note.as_json(), status_code=201)


async def _stored(call: Callable[[], Any]) -> Any:
    """Run a store call in a worker thread (boto3 blocks); a throttled or unreachable table is a 503."""
    try:
        return await anyio.to_thread.run_sync(call)
    except StoreUnavailable:
        raise ApiError(
            503,
            "temporarily_unavailable",
            "Notes cannot be reached right now. Try again in a few seconds.",
            headers={"retry-after": str(RETRY_AFTER_S)},
        ) from None


# ---------------------------------------------------------------------------------------- bodies


async def _json_body(request: Request) -> bytes:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as JSON (Content-Type: application/json).")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(400, "invalid_request", f"The body is larger than {MAX_BODY_BYTES} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(400, "invalid_request", f"The body is larger than {MAX_BODY_BYTES} bytes.")
    return bytes(body)


def _note_in(body: bytes) -> NoteIn:
    try:
        return NoteIn.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", _describe(exc)) from None


def _describe(exc: ValidationError) -> str:
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
            problems.append(f"'{field}' must be 1 to {MAX_NOTE_CHARS} characters")
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


# ---------------------------------------------------------------------------------------- error answers


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return _error(exc.status, exc.error, exc.message, exc.headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # Routes read their bodies themselves; this covers anything FastAPI validates (422 is not used here).
    return _error(400, "invalid_request", "The request is malformed.")


_HTTP_ERRORS = {404: ("not_found", "There is nothing at this path."), 405: ("method_not_allowed", "This path does not take this method.")}


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    error, message = _HTTP_ERRORS.get(exc.status_code, ("http_error", "The request could not be served."))
    return _error(exc.status_code, error, message, dict(exc.headers or {}))


app = create_app()
handler = Mangum(app, lifespan="off")
