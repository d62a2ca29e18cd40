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
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar

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
    FlowError,
    binding_cookie_name,
    bound_cookie_name,
    flow_id_for,
    is_session_uri,
    issue_binding_cookie,
    issue_bound_cookie,
    read_binding_cookie,
    read_bound_cookie,
    read_flow_token,
)
from services.common.health import router as health_router
from services.common.logs import configure_logging, hashed, security_event
from services.common.metrics import (
    AGENTCORE_ERRORS,
    BINDINGS_COMPLETED,
    BINDINGS_REFUSED,
    SESSIONS_CANCELLED,
    STATE_ECHO_MISSING,
    Metrics,
)
from services.common.middleware import AccessLogMiddleware, CorrelationIdMiddleware, SecurityHeadersMiddleware
from services.common.runtime import LazyRuntime
from services.common.signed import Keyring
from services.session_binding import pages
from services.session_binding.ledger import (
    Completion,
    CompletionInterrupted,
    Failure,
    LedgerRefusal,
    Record,
    SessionLedger,
    Status,
    StoreUnavailable,
    dynamodb_client,
)

RETRY_AFTER_S = 5
COOKIE_GRACE_S = 300
_AFTER_LOST_ANSWER = "_after_lost_answer"
T = TypeVar("T")
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
        provider: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.provider = provider
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
    ledger: SessionLedger
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
        dynamodb = LazyClient(lambda: dynamodb_client(settings.aws_region))
        ledger = SessionLedger(
            settings.binding_table, dynamodb.get, lease_s=settings.ledger_lease_s, clock=clock, concurrency=settings.agentcore_concurrency
        )
        metrics = Metrics(namespace=settings.metrics_namespace, service=SERVICE_NAME)
        return cls(settings, build_keyring(settings), build_verifier(settings, clock), agentcore, ledger, clock, metrics)


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
    standing = await _ledger_step(
        rt.ledger.start(flow.session_uri, identity.user_key, flow_id=flow.flow_id, provider=flow.provider, expires_at=flow.expires_at),
        identity,
        flow.session_uri,
    )
    if standing is not None:
        # The link was used already: show where the session stands rather than the provider's error.
        raise _standing_refusal(rt, standing, identity, flow.session_uri, provider=flow.provider)
    response = Response(status_code=302, headers={"location": flow.authorization_url})
    response.set_cookie(
        binding_cookie_name(flow.session_uri),
        issue_binding_cookie(rt.keyring, flow=flow),
        # A little longer than the flow: a late landing in this browser is then told "expired", not
        # "another browser". The service checks the flow's expiry inside the cookie itself.
        max_age=flow.expires_at - now + COOKIE_GRACE_S,
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


def _landing_parameters(rt: Runtime, query: Any) -> tuple[str, str | None]:
    """The sessionUri and AgentCore's echo of customState (None when absent) from the landing's query."""
    if "code" in query or ("state" in query and "session_id" not in query):
        # The provider redirected here directly: the callback registered there is ours, not AgentCore's.
        raise Refusal(400, "oauth_callback_parameters", pages.CALLBACK_MISDIRECTED)
    values = query.getlist("session_id")
    if len(values) != 1:
        raise Refusal(400, "session_id_missing" if not values else "session_id_duplicate", pages.MALFORMED)
    states = query.getlist(rt.settings.custom_state_param)
    if len(states) > 1 or (states and not states[0]):
        raise Refusal(400, "state_duplicate" if len(states) > 1 else "state_empty", pages.MALFORMED)
    if not is_session_uri(values[0]):
        raise Refusal(400, "session_id_malformed", pages.MALFORMED)
    return values[0], (states[0] if states else None)


async def _bind(rt: Runtime, request: Request) -> Response:
    query = request.query_params
    session_uri, state = _landing_parameters(rt, query)
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

    landing = _Landing(rt, session_uri, identity, state)
    provider: str | None = None
    expires_at = now + FLOW_TTL_MAX_S
    if rt.settings.binding_mode == "same-browser":
        provider, expires_at = await landing.check_browser(request.cookies.get(binding_cookie_name(session_uri)), now=now, query=query)
    elif state is None and rt.settings.require_custom_state:
        record = await _ledger_step(rt.ledger.get(session_uri), identity, session_uri)
        if record is not None and record.started_by(identity.user_key):
            landing.echo_missing(query)
        raise await landing.cancel("state_missing")

    async def call(record: Record) -> None:
        try:
            await _complete_at_agentcore(rt, session_uri, identity)
        except Refusal as refusal:
            if refusal.status == 410 and record.uncertain:
                # An earlier call's answer was lost: AgentCore's "already used" is most likely our own completion.
                # Not "cancelled, nothing shared": the agent will find the token, or ask again.
                raise Refusal(410, refusal.reason + _AFTER_LOST_ANSWER, pages.EXPIRED, **_who(identity, session_uri)) from None
            raise

    try:
        outcome = await rt.ledger.complete(
            session_uri, identity.user_key, call, flow_id=flow_id_for(state) if state else None, on_failure=_failure
        )
    except LedgerRefusal as refused:
        raise await landing.refused_by_ledger(refused.record) from None
    except CompletionInterrupted:
        raise Refusal(503, "completion_interrupted", pages.UNCERTAIN, retry_after=RETRY_AFTER_S, **_who(identity, session_uri)) from None
    except StoreUnavailable as exc:
        raise _store_refusal(exc, identity, session_uri) from None
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


def _failure(exc: Exception, record: Record) -> Failure:
    """How a failed completion leaves the session in the ledger."""
    if isinstance(exc, Refusal) and exc.status == 410:
        if exc.reason.endswith(_AFTER_LOST_ANSWER):
            return Failure(cancel_reason="expired")  # done or expired at AgentCore: either way, nothing more to do here
        # AgentCore refused it (before its callback, expired, or used): no later landing can succeed, and
        # an early attempt is what an initiator racing the victim's landing would make. Burn it.
        return Failure(cancel_reason="agentcore_refused")
    if isinstance(exc, Refusal) and exc.page is not pages.UNCERTAIN:
        return Failure()  # AgentCore busy or failing before it acted: the next landing may try again
    return Failure(uncertain=True)


class _Landing:
    """Decisions about one landing on `/oauth2/session-binding` that need the ledger."""

    def __init__(self, rt: Runtime, session_uri: str, identity: AlbIdentity, state: str | None) -> None:
        self.rt, self.session_uri, self.identity, self.state = rt, session_uri, identity, state

    async def check_browser(self, raw: str | None, *, now: int, query: Any) -> tuple[str, int]:
        """Proofs 3 and 4 in `same-browser` mode: this browser started this flow for this user, and the
        landing carries this flow's customState echo. Any failure burns the session for everyone."""
        if raw is None:
            # Browser swapping: AgentCore's redirect opened in a browser that did not start this flow.
            raise await self.cancel("other_browser")
        try:
            binding = read_binding_cookie(self.rt.keyring, raw, session_uri=self.session_uri, identity=self.identity, now=now)
        except FlowError as exc:
            if exc.reason == "expired":
                raise await self.cancel("expired") from None
            raise await self.cancel("other_user" if exc.reason == "other_user" else "other_browser") from None
        if self.state is None:
            if self.rt.settings.require_custom_state:
                # Only AgentCore's redirect carries the secret; a hand-made URL, even the initiator's, does not.
                self.echo_missing(query)
                raise await self.cancel("state_missing", provider=binding.provider)
        elif not binding.state_matches(self.state):
            # The landing carries another flow's customState: not the redirect AgentCore made for this cookie.
            raise await self.cancel("state_mismatch")
        return binding.provider, binding.expires_at

    def echo_missing(self, query: Any) -> None:
        """A landing that looks genuine but lacks the echo: loud, because it may mean every consent fails."""
        names = sorted({name if _PARAM_NAME.fullmatch(name) else "?" for name in query})[:12]
        security_event(
            "state_echo_missing",
            reason="state_missing",
            status=403,
            user_key=self.identity.user_key,
            session_uri=self.session_uri,
            expected_parameter=self.rt.settings.custom_state_param,
            parameters=names,  # names only: where AgentCore put the echo, if anywhere
        )
        self.rt.metrics.count(STATE_ECHO_MISSING)

    async def cancel(self, reason: str, *, provider: str | None = None) -> Refusal:
        """Burn the session for everyone, and the refusal that tells this person the truth about it."""
        burned, record = await _ledger_step(self.rt.ledger.cancel(self.session_uri, reason), self.identity, self.session_uri)
        if not burned:
            return _standing_refusal(self.rt, record, self.identity, self.session_uri, provider=record.provider, cause=reason)
        self.rt.metrics.count(SESSIONS_CANCELLED, Reason=reason)
        if not record.user:
            reason = "not_started"  # never started through /oauth2/start (or long gone): nobody's session
        page, status = _cancelled_page(reason, initiator=record.started_by(self.identity.user_key))
        return Refusal(
            status,
            f"cancelled_{reason}",
            page,
            clear_cookie=binding_cookie_name(self.session_uri),
            provider=provider or record.provider,
            **self._who(),
        )

    async def refused_by_ledger(self, record: Record | None) -> Refusal:
        """The claim was refused: the session is not this user's, not this flow's, gone, or cancelled."""
        if record is None:
            return await self.cancel("not_started")
        if record.status in (Status.STARTED, Status.CLAIMED) and not record.started_by(self.identity.user_key):
            return await self.cancel("other_user")
        if record.status is Status.STARTED and self.state is not None and not record.flow_is(flow_id_for(self.state)):
            return await self.cancel("state_mismatch")
        return _standing_refusal(self.rt, record, self.identity, self.session_uri, provider=record.provider)

    def _who(self) -> _Who:
        return _who(self.identity, self.session_uri)


_PARAM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def _cancelled_page(reason: str, *, initiator: bool) -> tuple[pages.Page, int]:
    """The page for a cancelled session, for whoever is looking: its initiator learns why; anyone else
    learns that it was not theirs and that nothing was shared, whatever cancelled it."""
    if reason == "not_started":
        return pages.EXPIRED, 410
    if not initiator:
        return pages.CANCELLED_NOT_YOURS, 403
    if reason in ("expired", "agentcore_refused"):
        return (pages.EXPIRED if reason == "expired" else pages.AGENTCORE_REFUSED), 410
    if reason == "state_missing":
        return pages.STATE_NOT_ECHOED, 403
    return pages.CANCELLED_ELSEWHERE, 403  # it came back in another browser or account than the initiator's


def _standing_refusal(
    rt: Runtime, record: Record, identity: AlbIdentity, session_uri: str, *, provider: str | None, cause: str = ""
) -> Refusal:
    """Where a session already stands, in the person's terms: cancelled, completed, or being completed."""
    who = _who(identity, session_uri)
    mine = record.started_by(identity.user_key)
    if record.status is Status.CANCELLED:
        why = (record.reason or "expired") if record.user else "not_started"  # burned before anyone started it
        page, _ = _cancelled_page(why, initiator=mine)
        return Refusal(410, f"session_cancelled_{why}", page, clear_cookie=binding_cookie_name(session_uri), provider=provider, **who)
    if not mine:
        return _someone_elses(rt, record, who, provider=provider, cause=cause)
    status, reason, page, retry_after = {
        Status.COMPLETED: (410, "session_already_completed", pages.ALREADY_COMPLETE, None),
        Status.CLAIMED: (503, "session_in_progress", pages.IN_PROGRESS, RETRY_AFTER_S),
        # Started and uncertain: an earlier call's answer was lost, so it may be complete; the agent knows.
        Status.STARTED: (503, "session_uncertain", pages.UNCERTAIN, RETRY_AFTER_S)
        if record.uncertain
        else (400, f"session_{cause or 'other_flow'}", pages.MALFORMED, None),
    }[record.status]
    return Refusal(status, reason, page, retry_after=retry_after, **who)


def _someone_elses(rt: Runtime, record: Record, who: _Who, *, provider: str | None, cause: str) -> Refusal:
    """Another user's session, claimed or completed (or possibly completed) already."""
    if rt.settings.require_custom_state:
        # With the echo required, nobody but the initiator completes a session with someone else's
        # consent: this is someone else's link, and nothing of this person's was used.
        return Refusal(403, f"session_other_user_{record.status.value}", pages.OTHER_USER, **who)
    # The echo is not required: the initiator may have won the race against this browser's landing.
    # Say so: access may be shared.
    security_event("consent_possibly_shared", reason=cause or "other_user", status=403, **who)
    return Refusal(403, "session_completed_by_other_user", pages.POSSIBLY_SHARED, reference=True, provider=provider, **who)


async def _ledger_step(step: Awaitable[T], identity: AlbIdentity, session_uri: str) -> T:
    try:
        return await step
    except StoreUnavailable as exc:
        raise _store_refusal(exc, identity, session_uri) from None


def _store_refusal(exc: StoreUnavailable, identity: AlbIdentity, session_uri: str) -> Refusal:
    return Refusal(503, f"store_unavailable_{exc}", pages.BUSY, retry_after=RETRY_AFTER_S, **_who(identity, session_uri))


def _who(identity: AlbIdentity, session_uri: str) -> _Who:
    return _Who(user_key=identity.user_key, session_uri=session_uri)


class _LeaseSpent(Exception):
    """The call would start too late in the ledger claim's lease (it queued for a worker thread too long)."""


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
    # The ledger's claim was just taken; its lease covers one call with every retry plus a margin. A call
    # that starts after the margin was spent queueing could outlive the lease and meet another task's.
    latest_start = time.monotonic() + (rt.settings.ledger_lease_s - rt.settings.agentcore_call_budget_s)

    def call() -> None:
        if time.monotonic() > latest_start:
            raise _LeaseSpent
        try:
            rt.agentcore.get().complete_resource_token_auth(sessionUri=session_uri, userIdentifier={"userId": identity.sub})
        except (BotoCoreError, ClientError) as exc:  # after botocore's own retries
            rt.metrics.count(AGENTCORE_ERRORS, ErrorCode=error_code(exc))
            raise

    try:
        await anyio.to_thread.run_sync(call, limiter=limiter)
    except _LeaseSpent:
        raise Refusal(503, "agentcore_queue_too_slow", pages.BUSY, retry_after=RETRY_AFTER_S, **context) from None
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
        return Refusal(410, f"agentcore_{code}", pages.AGENTCORE_REFUSED, clear_cookie=binding_cookie_name(session_uri), **context)
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
    response = pages.render(
        refusal.page, refusal.status, agent_path=rt.settings.agent_ui_path, provider=refusal.provider, reference=refusal.reference
    )
    if refusal.retry_after is not None:
        response.headers["retry-after"] = str(refusal.retry_after)
    if refusal.clear_cookie is not None:
        response.delete_cookie(refusal.clear_cookie, path="/", secure=True, httponly=True, samesite="lax")
    return response


app = create_app()
handler = Mangum(app, lifespan="off")
