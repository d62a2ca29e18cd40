"""Decisions that need the sessions ledger: a landing's proofs 3 and 4, cancelling a session for everyone,
and where a session already stands, each told in the person's terms."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any, TypeVar

from services.common.alb_identity import AlbIdentity
from services.common.flow import FlowError, binding_cookie_name, flow_id_for, read_binding_cookie
from services.common.logs import security_event
from services.common.metrics import SESSIONS_CANCELLED, STATE_ECHO_MISSING
from services.session_binding import pages
from services.session_binding.ledger import Record, Status, StoreUnavailable
from services.session_binding.refusal import RETRY_AFTER_S, Refusal, Who, who
from services.session_binding.runtime import Runtime

T = TypeVar("T")
_PARAM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class Landing:
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
        burned, record = await ledger_step(self.rt.ledger.cancel(self.session_uri, reason), self.identity, self.session_uri)
        if not burned:
            return standing_refusal(self.rt, record, self.identity, self.session_uri, provider=record.provider, cause=reason)
        self.rt.metrics.count(SESSIONS_CANCELLED, Reason=reason)
        if not record.user:
            reason = "not_started"  # never started through /oauth2/start (or long gone): nobody's session
        page, status = cancelled_page(reason, initiator=record.started_by(self.identity.user_key))
        return Refusal(
            status,
            f"cancelled_{reason}",
            page,
            clear_cookie=binding_cookie_name(self.session_uri),
            provider=provider or record.provider,
            **who(self.identity, self.session_uri),
        )

    async def refused_by_ledger(self, record: Record | None) -> Refusal:
        """The claim was refused: the session is not this user's, not this flow's, gone, or cancelled."""
        if record is None:
            return await self.cancel("not_started")
        if record.status in (Status.STARTED, Status.CLAIMED) and not record.started_by(self.identity.user_key):
            return await self.cancel("other_user")
        if record.status is Status.STARTED and self.state is not None and not record.flow_is(flow_id_for(self.state)):
            return await self.cancel("state_mismatch")
        return standing_refusal(self.rt, record, self.identity, self.session_uri, provider=record.provider)


def cancelled_page(reason: str, *, initiator: bool) -> tuple[pages.Page, int]:
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


def standing_refusal(
    rt: Runtime, record: Record, identity: AlbIdentity, session_uri: str, *, provider: str | None, cause: str = ""
) -> Refusal:
    """Where a session already stands, in the person's terms: cancelled, completed, or being completed."""
    concerns = who(identity, session_uri)
    mine = record.started_by(identity.user_key)
    if record.status is Status.CANCELLED:
        why = (record.reason or "expired") if record.user else "not_started"  # burned before anyone started it
        page, _ = cancelled_page(why, initiator=mine)
        return Refusal(410, f"session_cancelled_{why}", page, clear_cookie=binding_cookie_name(session_uri), provider=provider, **concerns)
    if not mine:
        return _someone_elses(rt, record, concerns, provider=provider, cause=cause)
    status, reason, page, retry_after = {
        Status.COMPLETED: (410, "session_already_completed", pages.ALREADY_COMPLETE, None),
        Status.CLAIMED: (503, "session_in_progress", pages.IN_PROGRESS, RETRY_AFTER_S),
        # Started and uncertain: an earlier call's answer was lost, so it may be complete; the agent knows.
        Status.STARTED: (503, "session_uncertain", pages.UNCERTAIN, RETRY_AFTER_S)
        if record.uncertain
        else (400, f"session_{cause or 'other_flow'}", pages.MALFORMED, None),
    }[record.status]
    return Refusal(status, reason, page, retry_after=retry_after, **concerns)


def _someone_elses(rt: Runtime, record: Record, concerns: Who, *, provider: str | None, cause: str) -> Refusal:
    """Another user's session, claimed or completed (or possibly completed) already."""
    if rt.settings.require_custom_state:
        # With the echo required, nobody but the initiator completes a session with someone else's
        # consent: this is someone else's link, and nothing of this person's was used.
        return Refusal(403, f"session_other_user_{record.status.value}", pages.OTHER_USER, **concerns)
    # The echo is not required: the initiator may have won the race against this browser's landing.
    # Say so: access may be shared.
    security_event("consent_possibly_shared", reason=cause or "other_user", status=403, **concerns)
    return Refusal(403, "session_completed_by_other_user", pages.POSSIBLY_SHARED, reference=True, provider=provider, **concerns)


async def ledger_step(step: Awaitable[T], identity: AlbIdentity, session_uri: str) -> T:
    """One ledger call; a throttled or unreachable table is a 503 "we could not finish right now"."""
    try:
        return await step
    except StoreUnavailable as exc:
        raise store_refusal(exc, identity, session_uri) from None


def store_refusal(exc: StoreUnavailable, identity: AlbIdentity, session_uri: str) -> Refusal:
    return Refusal(503, f"store_unavailable_{exc}", pages.BUSY, retry_after=RETRY_AFTER_S, **who(identity, session_uri))
