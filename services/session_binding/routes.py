"""The two routes of a consent: `/oauth2/start` binds a flow to this browser, `/oauth2/session-binding`
completes it for the person who started it. Each refusal is raised, and answered by `refusal.py`."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.common.alb_identity import AlbIdentity
from services.common.flow import (
    FLOW_TTL_MAX_S,
    FlowError,
    binding_cookie_name,
    bound_cookie_name,
    issue_binding_cookie,
    issue_bound_cookie,
    read_bound_cookie,
    read_flow_token,
)
from services.common.identity import CurrentUser
from services.common.logs import hashed
from services.session_binding import pages
from services.session_binding.completion import complete
from services.session_binding.landing import Landing, ledger_step, standing_refusal
from services.session_binding.parameters import FlowParameter, LandingQuery
from services.session_binding.refusal import Refusal
from services.session_binding.runtime import BindingRuntime, Runtime

START_PATH = "/oauth2/start"
LANDING_PATH = "/oauth2/session-binding"
# The security event of a refusal names the step that refused.
REFUSAL_EVENTS = {START_PATH: "start_refused", LANDING_PATH: "binding_refused"}
COOKIE_GRACE_S = 300
_log = logging.getLogger("session_binding")

router = APIRouter(tags=["session-binding"])


@router.get(START_PATH, include_in_schema=True)
async def start(rt: BindingRuntime, token: FlowParameter, identity: CurrentUser) -> Response:
    now = int(rt.clock())
    try:
        flow = read_flow_token(rt.keyring, token, now=now)
    except FlowError as exc:
        if exc.reason == "expired":
            raise Refusal(410, "flow_expired", pages.EXPIRED, user_key=identity.user_key) from None
        raise Refusal(400, f"flow_{exc.reason}", pages.MALFORMED, user_key=identity.user_key) from None
    if not flow.owned_by(identity):
        # A consent link forwarded to someone else (login CSRF): their browser must not bind our flow.
        raise Refusal(403, "flow_other_user", pages.OTHER_USER, user_key=identity.user_key, session_uri=flow.session_uri)
    standing = await ledger_step(
        rt.ledger.start(
            flow.session_uri,
            identity.user_key,
            flow_id=flow.flow_id,
            provider=flow.shown_name,
            expires_at=flow.expires_at,
            connection=(flow.connection, flow.scopes, flow.generation) if flow.connection else None,
        ),
        identity,
        flow.session_uri,
    )
    if standing is not None:
        # The link was used already: show where the session stands rather than the provider's error.
        raise standing_refusal(rt, standing, identity, flow.session_uri, provider=flow.shown_name)
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


@router.get(LANDING_PATH, include_in_schema=True)
async def session_binding(request: Request, rt: BindingRuntime, query: LandingQuery, identity: CurrentUser) -> Response:
    session_uri, state = query.session_uri, query.state
    now = int(rt.clock())

    bound = request.cookies.get(bound_cookie_name(session_uri))
    if bound is not None:
        try:
            done = read_bound_cookie(rt.keyring, bound, session_uri=session_uri, identity=identity, now=now)
        except FlowError:
            pass  # not proof of completion: decide as if it were absent
        else:
            return _success(rt, session_uri, identity, provider=done.provider, expires_at=done.expires_at, now=now)

    landing = Landing(rt, session_uri, identity, state)
    provider: str | None = None
    expires_at = now + FLOW_TTL_MAX_S
    if rt.settings.binding_mode == "same-browser":
        raw = request.cookies.get(binding_cookie_name(session_uri))
        provider, expires_at = await landing.check_browser(raw, now=now, query=request.query_params)
    elif state is None and rt.settings.require_custom_state:
        record = await ledger_step(rt.ledger.get(session_uri), identity, session_uri)
        if record is not None and record.started_by(identity.user_key):
            landing.echo_missing(request.query_params)
        raise await landing.cancel("state_missing")

    if not await complete(landing):
        # Completed at AgentCore, but disconnected since the link was made: say the agent will not use it.
        return pages.render(pages.DISCONNECTED_SINCE, 200, agent_path=rt.settings.agent_ui_path, provider=provider)
    return _success(rt, session_uri, identity, provider=provider, expires_at=expires_at, now=now)


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
