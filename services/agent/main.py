"""Agent service: the chat UI and API. Acts for the signed-in person with per-user tokens.

* `GET /`: the chat UI (static files in `static/`, no third-party resource).
* `POST /api/chat`: `{"message", "history"}` in, server-sent events out: `message`, `tool_call`,
  `tool_result`, `authorization_required`, `error`, `done`. The user is the ALB-verified `sub`;
  nothing in the body names a user.
* `GET /health`: constant.

Served by uvicorn (`services.agent.main:app`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from services.agent.loop import ChatContext, run_turn, with_heartbeat
from services.agent.tokens import OutboundTokens, WorkloadTokenCache
from services.agent.tools import Tool, tools_for
from services.common.agentcore import LazyClient, agentcore_client, bedrock_runtime_client
from services.common.alb_identity import AlbIdentity, AlbIdentityVerifier, KeyUnavailable, NotAuthenticated, verify_alb_identity
from services.common.bootstrap import build_keyring, build_verifier
from services.common.config import AgentSettings, load_settings
from services.common.health import router as health_router
from services.common.logs import configure_logging, hashed
from services.common.metrics import Metrics
from services.common.middleware import AccessLogMiddleware, CorrelationIdMiddleware, SecurityHeadersMiddleware
from services.common.runtime import LazyRuntime
from services.common.signed import Keyring

STATIC_DIR = Path(__file__).resolve().parent / "static"
SERVICE_NAME = "agent"  # the metrics' Service dimension
MAX_BODY_BYTES = 256 * 1024
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


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
    _message = field_validator("message")(_not_blank)


class ChatStream(StreamingResponse):
    """The turn's event stream; releases the person's chat slot however the response ends."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"x-accel-buffering": "no"})
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


class ChatSlots:
    """Chats in flight, per process and per person: past the bounds, a clear 503 or 429 instead of a queue."""

    def __init__(self, *, total: int, per_user: int) -> None:
        self._total, self._per_user = total, per_user
        self._by_user: dict[str, int] = {}
        self.in_flight = 0

    def take(self, user: str) -> Callable[[], None]:
        if self.in_flight >= self._total:
            raise ApiError(503, "busy", "The agent is busy right now. Please try again in a few seconds.", {"retry-after": "5"})
        if self._by_user.get(user, 0) >= self._per_user:
            raise ApiError(
                429, "too_many_chats", "You already have several requests running. Wait for one to finish.", {"retry-after": "5"}
            )
        self.in_flight += 1
        self._by_user[user] = self._by_user.get(user, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.in_flight -= 1
            remaining = self._by_user[user] - 1
            if remaining:
                self._by_user[user] = remaining
            else:
                del self._by_user[user]

        return release


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class Runtime:
    settings: AgentSettings
    keyring: Keyring
    verifier: AlbIdentityVerifier
    tokens: OutboundTokens
    tools: dict[str, Tool]
    bedrock: LazyClient
    http: httpx.AsyncClient
    limiter: list[anyio.CapacityLimiter]
    slots: ChatSlots
    metrics: Metrics

    def bedrock_limiter(self) -> anyio.CapacityLimiter:
        if len(self.limiter) < 2:  # created in the event loop, on first use
            self.limiter.append(anyio.CapacityLimiter(self.settings.bedrock_concurrency))
        return self.limiter[1]

    @classmethod
    def build(cls, settings: AgentSettings, clock: Callable[[], float]) -> Runtime:
        limiter: list[anyio.CapacityLimiter] = []

        def agentcore_limiter() -> anyio.CapacityLimiter:
            if not limiter:  # created in the event loop, on first use
                limiter.append(anyio.CapacityLimiter(settings.agentcore_concurrency))
            return limiter[0]

        http = httpx.AsyncClient(timeout=settings.tool_timeout_s, follow_redirects=False, trust_env=False)
        # No cookies kept: one client serves every person, and a cookie an API sets for one person
        # must never ride along on another person's request.
        http.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))

        metrics = Metrics(namespace=settings.metrics_namespace, service=SERVICE_NAME)
        cache = WorkloadTokenCache(max_entries=settings.workload_token_cache_size, ttl_s=settings.workload_token_ttl_s, metrics=metrics)
        agentcore = LazyClient(lambda: agentcore_client(settings, app_id="agentcore-ecs-agent"))
        return cls(
            settings=settings,
            keyring=build_keyring(settings),
            verifier=build_verifier(settings, clock),
            tokens=OutboundTokens(settings, agentcore, cache, limiter=agentcore_limiter, metrics=metrics),
            tools={tool.name: tool for tool in tools_for(settings)},
            bedrock=LazyClient(lambda: bedrock_runtime_client(settings)),
            http=http,
            limiter=limiter,
            slots=ChatSlots(total=settings.max_inflight_chats, per_user=settings.max_chats_per_user),
            metrics=metrics,
        )


async def _close_http(rt: Runtime) -> None:
    await rt.http.aclose()


def create_app(
    load: Callable[[], AgentSettings] = lambda: load_settings(AgentSettings), *, clock: Callable[[], float] = time.time
) -> FastAPI:
    def build() -> Runtime:
        settings = load()
        configure_logging(settings.log_level)
        return Runtime.build(settings, clock)

    get_runtime = LazyRuntime(build, on_shutdown=_close_http)

    # redirect_slashes off: Starlette's slash redirect builds an absolute Location from the Host header.
    app = FastAPI(title="agent", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False, lifespan=get_runtime.lifespan)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, content_security_policy=CONTENT_SECURITY_POLICY)
    app.add_middleware(CorrelationIdMiddleware)  # outermost: every line of the request carries its id
    app.include_router(health_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.runtime = get_runtime

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid_request", "message": _readable(exc.errors())}, status_code=400)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/session")
    async def session(request: Request) -> dict[str, str | None]:
        """Who is signed in, as an opaque digest: the UI keeps its history per person with it."""
        identity = await _identity(get_runtime(), request)
        return {"user": hashed(identity.user_key)}

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        rt = get_runtime()
        identity = await _identity(rt, request)
        body = await _chat_request(request, rt.settings)
        agentcore_limiter = rt.tokens.limiter()
        if agentcore_limiter.available_tokens == 0 and agentcore_limiter.statistics().tasks_waiting >= rt.settings.agentcore_max_waiting:
            raise ApiError(503, "busy", "The agent is busy right now. Please try again in a few seconds.", {"retry-after": "5"})
        release = rt.slots.take(identity.user_key)
        bedrock = rt.bedrock.peek() or await anyio.to_thread.run_sync(rt.bedrock.get)  # built once, off the event loop
        context = ChatContext(
            identity=identity,
            settings=rt.settings,
            tokens=rt.tokens,
            keyring=rt.keyring,
            tools=rt.tools,
            http=rt.http,
            bedrock=bedrock,
            bedrock_limiter=rt.bedrock_limiter(),
            metrics=rt.metrics,
        )
        history: list[tuple[str, str]] = (
            [(item.role, item.text) for item in body.history[-rt.settings.max_history :]] if rt.settings.max_history else []
        )
        events = run_turn(context, body.message, history)
        return ChatStream(with_heartbeat(events, heartbeat_s=rt.settings.heartbeat_s, turn_timeout_s=rt.settings.turn_timeout_s), release)

    return app


async def _identity(rt: Runtime, request: Request) -> AlbIdentity:
    try:
        return await verify_alb_identity(request.headers, rt.verifier)
    except KeyUnavailable:
        raise ApiError(
            503, "sign_in_unchecked", "Your sign-in could not be checked right now. Try again in a few seconds.", {"retry-after": "5"}
        ) from None
    except NotAuthenticated:
        raise ApiError(401, "not_signed_in", "You are not signed in. Reload the page to sign in.") from None


async def _chat_request(request: Request, settings: AgentSettings) -> ChatRequest:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the request as application/json.")
    declared = request.headers.get("content-length")
    if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) > MAX_BODY_BYTES):
        raise ApiError(413, "too_large", f"The request is larger than {MAX_BODY_BYTES // 1024} KiB.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, "too_large", f"The request is larger than {MAX_BODY_BYTES // 1024} KiB.")
    try:
        parsed = ChatRequest.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", _readable(exc.errors())) from None
    if len(parsed.message) > settings.max_message_chars:
        raise ApiError(400, "invalid_request", f"message: at most {settings.max_message_chars} characters.")
    return parsed


def _readable(errors: Any) -> str:
    """Pydantic errors as one line a person can act on, without echoing their input back."""
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


app = create_app()
