"""Completing a consent: claim the session in the ledger, call `CompleteResourceTokenAuth` once, and map
each AgentCore or botocore outcome to a refusal and to what it leaves in the ledger."""

from __future__ import annotations

import logging
import time

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError, HTTPClientError

from services.common.agentcore import TRANSIENT_ERROR_CODES, error_code
from services.common.alb_identity import AlbIdentity
from services.common.connections import Connected, RegistryUnavailable, connection_user
from services.common.flow import binding_cookie_name, flow_id_for
from services.common.logs import hashed
from services.common.metrics import AGENTCORE_ERRORS, BINDINGS_COMPLETED
from services.session_binding import pages
from services.session_binding.landing import Landing, store_refusal
from services.session_binding.ledger import Completion, CompletionInterrupted, Failure, LedgerRefusal, Record, StoreUnavailable
from services.session_binding.refusal import RETRY_AFTER_S, Refusal, Who, who
from services.session_binding.runtime import Runtime

_AFTER_LOST_ANSWER = "_after_lost_answer"
_log = logging.getLogger("session_binding")


async def complete(landing: Landing) -> bool:
    """Claim the landing's session and complete it at AgentCore, once across every task; else a refusal.
    False when the consent completed but the person disconnected the account after the flow was issued."""
    rt, session_uri, identity, state = landing.rt, landing.session_uri, landing.identity, landing.state
    stale: list[bool] = []

    async def call(record: Record) -> None:
        try:
            await _complete_at_agentcore(rt, session_uri, identity)
            if await _record_connection(rt, identity, record) is Connected.STALE_FLOW:
                stale.append(True)
        except Refusal as refusal:
            if refusal.status == 410 and record.uncertain:
                # An earlier call's answer was lost: AgentCore's "already used" is most likely our own completion.
                # Not "cancelled, nothing shared": the agent will find the token, or ask again.
                raise Refusal(410, refusal.reason + _AFTER_LOST_ANSWER, pages.EXPIRED, **who(identity, session_uri)) from None
            raise

    try:
        outcome = await rt.ledger.complete(
            session_uri, identity.user_key, call, flow_id=flow_id_for(state) if state else None, on_failure=_failure
        )
    except LedgerRefusal as refused:
        raise await landing.refused_by_ledger(refused.record) from None
    except CompletionInterrupted:
        raise Refusal(503, "completion_interrupted", pages.UNCERTAIN, retry_after=RETRY_AFTER_S, **who(identity, session_uri)) from None
    except StoreUnavailable as exc:
        raise store_refusal(exc, identity, session_uri) from None
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
    return not stale


async def _record_connection(rt: Runtime, identity: AlbIdentity, record: Record) -> Connected | None:
    """The person connected this account: say so in the connections registry. Best effort: AgentCore has
    completed, and a registry that missed it fails closed (a disconnected record stays disconnected, so the
    agent asks again; a missing one is created on first use). A flow issued before a disconnect does not
    undo it (`Connected.STALE_FLOW`: the record's generation moved on)."""
    if not record.connection:
        return None  # a flow from an agent that does not name its connection: nothing to record
    try:
        outcome = await rt.connections.record_connected(
            connection_user(identity), record.connection, record.scopes, now=int(rt.clock()), flow_generation=record.generation
        )
    except (RegistryUnavailable, ValueError) as exc:
        code = str(exc) if isinstance(exc, RegistryUnavailable) else "invalid_record"
        _log.warning("connection_not_recorded", extra={"event": "connection_not_recorded", "code": code, "user": hashed(identity.user_key)})
        return None
    if outcome is Connected.STALE_FLOW:
        _log.info("connection_stale_flow", extra={"event": "connection_stale_flow", "user": hashed(identity.user_key)})
    return outcome


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


class _LeaseSpent(Exception):
    """The call would start too late in the ledger claim's lease (it queued for a worker thread too long)."""


async def _complete_at_agentcore(rt: Runtime, session_uri: str, identity: AlbIdentity) -> None:
    context = who(identity, session_uri)
    limiter = rt.agentcore_limiter()
    if limiter.available_tokens == 0 and limiter.statistics().tasks_waiting >= rt.settings.agentcore_max_waiting:
        # Shed load before the ALB times out: a clear "reload in a few seconds" beats a 504.
        raise Refusal(503, "agentcore_queue_full", pages.BUSY, retry_after=RETRY_AFTER_S, **context)
    # The ledger's claim was just taken; its lease covers one call with every retry plus a margin. A call
    # that starts after the margin was spent queueing could outlive the lease and meet another task's.
    latest_start = time.monotonic() + (
        rt.settings.ledger_lease_s - rt.settings.agentcore_call_budget_s - rt.settings.registry_call_budget_s
    )

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


def _agentcore_refusal(exc: ClientError, session_uri: str, context: Who) -> Refusal:
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
