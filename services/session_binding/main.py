"""Session binding service: completes AgentCore's 3-legged OAuth only for the same user, in the same browser.

* `GET /oauth2/start?flow=<token>`: the signed-in user must own the signed flow token; a `__Host-`
  cookie binds the flow's sessionUri to this browser; 302 to the authorization URL in the token.
* `GET /oauth2/session-binding?session_id=<sessionUri>`: where AgentCore sends the browser after
  consent. Calls `CompleteResourceTokenAuth` once, for the verified `sub`, only when the cookie
  (in `same-browser` mode) names this session and this user.
* `GET /health`: constant.

Served by uvicorn on Fargate (`services.session_binding.main:app`) and, the same `app` object, by
Mangum on Lambda (`services.session_binding.main.handler`). Every refusal renders a page with the
right status, writes one security event, and never calls AgentCore.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

import anyio
import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError, HTTPClientError
from fastapi import APIRouter, FastAPI, Request
from mangum import Mangum
from starlette.responses import Response

from services.common.agentcore import TRANSIENT_ERROR_CODES, LazyClient, agentcore_client, error_code
from services.common.alb_identity import (
    AlbIdentity,
    AlbIdentityVerifier,
    KeyUnavailable,
    NotAuthenticated,
    verify_alb_identity,
)
from services.common.bootstrap import build_keyring, build_verifier
from services.common.config import BindingSettings, load_settings
from services.common.flow import (
    FLOW_TTL_MAX_S,
    BrowserBinding,
    FlowError,
    binding_cookie_name,
    bound_cookie_name,
    is_session_uri,
    issue_binding_cookie,
    issue_bound_cookie,
    read_binding_cookie,
    read_bound_cookie,
    read_flow_token,
)
from services.common.health import router as health_router
from services.common.logs import configure_logging, hashed, security_event
from services.common.metrics import AGENTCORE_ERRORS, BINDINGS_COMPLETED, BINDINGS_REFUSED, Metrics
from services.common.middleware import AccessLogMiddleware, CorrelationIdMiddleware, SecurityHeadersMiddleware
from services.common.runtime import LazyRuntime
from services.common.signed import Keyring
from services.session_binding import pages
from services.session_binding.ledger import Completion, CompletionInterrupted, CompletionLedger, OtherUsersSession

RETRY_AFTER_S = 5
SERVICE_NAME = "session-binding"  # the metrics' Service dimension
_log = logging.getLogger("session_binding")


class Refusal(Exception):
    """A request the service will not complete: status, stable reason code, the page to show."""

    def __init__(
        self,
        status: int,
        reason: str,
        page: pages.Page,
        *,
        user_key: str | None = None,
        session_uri: str | None = None,
        retry_after: int | None = None,
        reference: bool = False,
        clear_cookie: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.page = page
        self.user_key = user_key
        self.session_uri = session_uri
        self.retry_after = retry_after
        self.reference = secrets.token_hex(6) if reference else None
        self.clear_cookie = clear_cookie


@dataclass(frozen=True)
class Runtime:
    """Everything built once per process from the settings."""

    settings: BindingSettings
    keyring: Keyring
    verifier: AlbIdentityVerifier
    agentcore: LazyClient
    ledger: CompletionLedger
    clock: Callable[[], float]
    metrics: Metrics
    limiter: list[anyio.CapacityLimiter] = field(default_factory=list)  # created in the event loop, on first use

    def agentcore_limiter(self) -> anyio.CapacityLimiter:
        # A few threads suffice to keep AgentCore calls in flight; more only fight the event loop for
        # the GIL and stretch tail latency (measured by bench/binding.py).
        if not self.limiter:
            self.limiter.append(anyio.CapacityLimiter(self.settings.agentcore_concurrency))
        return self.limiter[0]

    @classmethod
    def build(cls, settings: BindingSettings, clock: Callable[[], float]) -> Runtime:
        agentcore = LazyClient(lambda: agentcore_client(settings))
        metrics = Metrics(namespace=settings.metrics_namespace, service=SERVICE_NAME)
        return cls(settings, build_keyring(settings), build_verifier(settings, clock), agentcore, CompletionLedger(), clock, metrics)


def create_app(
    load: Callable[[], BindingSettings] = lambda: load_settings(BindingSettings), *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The service as an ASGI app. Settings load at start-up under uvicorn, at first request under Mangum."""

    def build() -> Runtime:
        settings = load()
        configure_logging(settings.log_level)
        return Runtime.build(settings, clock)

    get_runtime = LazyRuntime(build)

    # redirect_slashes off: Starlette's slash redirect builds an absolute Location from the Host header.
    app = FastAPI(
        title="session-binding", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False, lifespan=get_runtime.lifespan
    )
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, content_security_policy=pages.CONTENT_SECURITY_POLICY)
    app.add_middleware(CorrelationIdMiddleware)  # outermost: every line of the request carries its id
    app.include_router(health_router)
    app.include_router(_binding_router(get_runtime))
    app.state.runtime = get_runtime
    return app


def _binding_router(get_runtime: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter(tags=["session-binding"])

    @router.get("/oauth2/start", include_in_schema=True)
    async def start(request: Request) -> Response:
        rt = get_runtime()
        try:
            return await _start(rt, request)
        except Refusal as refusal:
            return _refuse(rt, "start_refused", refusal)

    @router.get("/oauth2/session-binding", include_in_schema=True)
    async def session_binding(request: Request) -> Response:
        rt = get_runtime()
        try:
            return await _bind(rt, request)
        except Refusal as refusal:
            return _refuse(rt, "binding_refused", refusal)

    return router


async def _identity(rt: Runtime, request: Request, *, session_uri: str | None = None) -> AlbIdentity:
    try:
        return await verify_alb_identity(request.headers, rt.verifier)
    except KeyUnavailable as exc:
        raise Refusal(503, exc.reason, pages.SIGN_IN_UNCHECKED, session_uri=session_uri, retry_after=RETRY_AFTER_S) from None
    except NotAuthenticated as exc:
        raise Refusal(401, f"not_signed_in:{exc.reason}", pages.NOT_SIGNED_IN, session_uri=session_uri) from None


async def _start(rt: Runtime, request: Request) -> Response:
    values = request.query_params.getlist("flow")
    if len(values) != 1 or not values[0]:
        raise Refusal(400, "flow_missing" if not values else "flow_duplicate", pages.MALFORMED)
    identity = await _identity(rt, request)
    now = int(rt.clock())
    try:
        flow = read_flow_token(rt.keyring, values[0], now=now)
    except FlowError as exc:
        if exc.reason == "expired":
            raise Refusal(410, "flow_expired", pages.EXPIRED, user_key=identity.user_key) from None
        raise Refusal(400, f"flow_{exc.reason}", pages.MALFORMED, user_key=identity.user_key) from None
    if not flow.owned_by(identity):
        # A consent link forwarded to someone else (login CSRF): their browser must not bind our flow.
        raise Refusal(403, "flow_other_user", pages.OTHER_USER, user_key=identity.user_key, session_uri=flow.session_uri)
    response = Response(status_code=302, headers={"location": flow.authorization_url})
    response.set_cookie(
        binding_cookie_name(flow.session_uri),
        issue_binding_cookie(rt.keyring, flow=flow),
        max_age=flow.expires_at - now,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",  # sent on AgentCore's top-level redirect back to us, not on cross-site subrequests
    )
    _log.info(
        "binding_started",
        extra={
            "event": "binding_started",
            "user": hashed(identity.user_key),
            "session": hashed(flow.session_uri),
            "provider": flow.provider,
        },
    )
    return response


async def _bind(rt: Runtime, request: Request) -> Response:
    query = request.query_params
    if "code" in query or ("state" in query and "session_id" not in query):
        # The provider redirected here directly: the callback registered there is ours, not AgentCore's.
        raise Refusal(400, "oauth_callback_parameters", pages.CALLBACK_MISDIRECTED)
    values = query.getlist("session_id")
    if len(values) != 1:
        raise Refusal(400, "session_id_missing" if not values else "session_id_duplicate", pages.MALFORMED)
    states = query.getlist("state")  # AgentCore's echo of customState, when it sends one
    if len(states) > 1:
        raise Refusal(400, "state_duplicate", pages.MALFORMED)
    session_uri = values[0]
    if not is_session_uri(session_uri):
        raise Refusal(400, "session_id_malformed", pages.MALFORMED)
    identity = await _identity(rt, request, session_uri=session_uri)
    now = int(rt.clock())

    bound = request.cookies.get(bound_cookie_name(session_uri))
    if bound is not None:
        try:
            done = read_bound_cookie(rt.keyring, bound, session_uri=session_uri, identity=identity, now=now)
        except FlowError:
            pass  # not proof of completion: decide as if it were absent
        else:
            return _success(rt, session_uri, identity, provider=done.provider, expires_at=done.expires_at, now=now)

    provider: str | None = None
    expires_at = now + FLOW_TTL_MAX_S
    if rt.settings.binding_mode == "same-browser":
        binding = _browser_binding(rt, request, session_uri, identity, now=now, states=states)
        provider, expires_at = binding.provider, binding.expires_at

    async def call() -> None:
        await _complete_at_agentcore(rt, session_uri, identity)

    try:
        outcome = await rt.ledger.complete(session_uri, identity.user_key, call)
    except OtherUsersSession:
        raise Refusal(403, "session_other_user", pages.OTHER_USER, user_key=identity.user_key, session_uri=session_uri) from None
    except CompletionInterrupted:
        raise Refusal(
            503, "completion_interrupted", pages.UNCERTAIN, user_key=identity.user_key, session_uri=session_uri, retry_after=RETRY_AFTER_S
        ) from None
    if outcome is Completion.CALLED:
        _log.info(
            "binding_completed",
            extra={
                "event": "binding_completed",
                "user": hashed(identity.user_key),
                "session": hashed(session_uri),
                "mode": rt.settings.binding_mode,
            },
        )
        rt.metrics.count(BINDINGS_COMPLETED)
    return _success(rt, session_uri, identity, provider=provider, expires_at=expires_at, now=now)


def _browser_binding(
    rt: Runtime, request: Request, session_uri: str, identity: AlbIdentity, *, now: int, states: list[str]
) -> BrowserBinding:
    """Proof 3: this browser started this flow for this user (and, when AgentCore echoes it, this customState)."""
    raw = request.cookies.get(binding_cookie_name(session_uri))
    if raw is None:
        # Browser swapping: AgentCore's redirect opened in a browser that did not start this flow.
        raise Refusal(403, "binding_cookie_missing", pages.OTHER_BROWSER, user_key=identity.user_key, session_uri=session_uri)
    try:
        binding = read_binding_cookie(rt.keyring, raw, session_uri=session_uri, identity=identity, now=now)
    except FlowError as exc:
        if exc.reason == "expired":
            raise Refusal(410, "binding_cookie_expired", pages.EXPIRED, user_key=identity.user_key, session_uri=session_uri) from None
        if exc.reason == "other_user":
            raise Refusal(403, "binding_cookie_other_user", pages.OTHER_USER, user_key=identity.user_key, session_uri=session_uri) from None
        raise Refusal(
            403, f"binding_cookie_{exc.reason}", pages.OTHER_BROWSER, user_key=identity.user_key, session_uri=session_uri
        ) from None
    if not states and rt.settings.require_custom_state:
        # Only AgentCore's redirect carries the secret; a hand-made URL, even from the initiator, does not.
        raise Refusal(403, "state_missing", pages.OTHER_BROWSER, user_key=identity.user_key, session_uri=session_uri)
    if states and not binding.state_matches(states[0]):
        # The redirect carries another flow's customState: not the redirect AgentCore made for this cookie.
        raise Refusal(403, "state_mismatch", pages.OTHER_BROWSER, user_key=identity.user_key, session_uri=session_uri)
    return binding


class _Who(TypedDict):
    """Who a refusal concerns, for its security event."""

    user_key: str
    session_uri: str


async def _complete_at_agentcore(rt: Runtime, session_uri: str, identity: AlbIdentity) -> None:
    context = _Who(user_key=identity.user_key, session_uri=session_uri)
    limiter = rt.agentcore_limiter()
    if limiter.available_tokens == 0 and limiter.statistics().tasks_waiting >= rt.settings.agentcore_max_waiting:
        # Shed load before the ALB times out: a clear "reload in a few seconds" beats a 504.
        raise Refusal(503, "agentcore_queue_full", pages.BUSY, retry_after=RETRY_AFTER_S, **context)

    def call() -> None:
        try:
            rt.agentcore.get().complete_resource_token_auth(sessionUri=session_uri, userIdentifier={"userId": identity.sub})
        except (BotoCoreError, ClientError) as exc:  # after botocore's own retries
            rt.metrics.count(AGENTCORE_ERRORS, ErrorCode=error_code(exc))
            raise

    try:
        await anyio.to_thread.run_sync(call, limiter=limiter)
    except ClientError as exc:
        raise _agentcore_refusal(exc, session_uri, context) from None
    except HTTPClientError as exc:
        # The request may have reached AgentCore (read timeout, connection closed mid-answer): outcome unknown.
        reason = "agentcore_read_timeout" if "timeout" in type(exc).__name__.lower() else f"agentcore_{type(exc).__name__}"
        raise Refusal(503, reason, pages.UNCERTAIN, retry_after=RETRY_AFTER_S, **context) from None
    except BotoConnectionError:
        raise Refusal(503, "agentcore_unreachable", pages.BUSY, retry_after=RETRY_AFTER_S, **context) from None
    except BotoCoreError as exc:  # e.g. credentials not (yet) available from the task role
        raise Refusal(503, f"agentcore_{type(exc).__name__}", pages.BUSY, retry_after=RETRY_AFTER_S, **context) from None


def _agentcore_refusal(exc: ClientError, session_uri: str, context: _Who) -> Refusal:
    error = exc.response.get("Error", {})
    metadata = exc.response.get("ResponseMetadata", {})
    code = str(error.get("Code", "Unknown"))
    status = int(metadata.get("HTTPStatusCode", 0) or 0)
    if code in TRANSIENT_ERROR_CODES or status == 429 or status >= 500:
        return Refusal(503, f"agentcore_{code}", pages.BUSY, retry_after=RETRY_AFTER_S, **context)
    if code in {"ValidationException", "ResourceNotFoundException"}:
        if metadata.get("RetryAttempts", 0):
            # An earlier attempt may have completed it before its answer was lost: do not call it "used".
            return Refusal(503, f"agentcore_{code}_after_retry", pages.UNCERTAIN, retry_after=RETRY_AFTER_S, **context)
        return Refusal(410, f"agentcore_{code}", pages.EXPIRED, clear_cookie=binding_cookie_name(session_uri), **context)
    return Refusal(502, f"agentcore_{code}", pages.FAILED, reference=True, **context)


def _success(rt: Runtime, session_uri: str, identity: AlbIdentity, *, provider: str | None, expires_at: int, now: int) -> Response:
    response = pages.render(pages.SUCCESS, 200, agent_path=rt.settings.agent_ui_path, provider=provider)
    response.delete_cookie(binding_cookie_name(session_uri), path="/", secure=True, httponly=True, samesite="lax")
    response.set_cookie(
        bound_cookie_name(session_uri),
        issue_bound_cookie(
            rt.keyring, session_uri=session_uri, identity=identity, provider=provider or "the service", expires_at=expires_at
        ),
        max_age=max(expires_at - now, 1),
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )
    return response


def _refuse(rt: Runtime, event: str, refusal: Refusal) -> Response:
    security_event(
        event,
        reason=refusal.reason,
        status=refusal.status,
        user_key=refusal.user_key,
        session_uri=refusal.session_uri,
        **({"reference": refusal.reference} if refusal.reference else {}),
    )
    rt.metrics.count(BINDINGS_REFUSED, Reason=refusal.reason)
    response = pages.render(refusal.page, refusal.status, agent_path=rt.settings.agent_ui_path, reference=refusal.reference)
    if refusal.retry_after is not None:
        response.headers["retry-after"] = str(refusal.retry_after)
    if refusal.clear_cookie is not None:
        response.delete_cookie(refusal.clear_cookie, path="/", secure=True, httponly=True, samesite="lax")
    return response


app = create_app()
handler = Mangum(app, lifespan="off")
