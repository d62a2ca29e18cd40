"""How the session binding service says no: `Refusal`, and the one handler that answers it with a page,
a security event and a metric. A sign-in the service cannot accept becomes a refusal like any other."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TypedDict

from fastapi import FastAPI, Request
from starlette.responses import Response

from services.common.alb_identity import AlbIdentity
from services.common.identity import SignInError, SignInUnchecked
from services.common.logs import security_event
from services.common.metrics import BINDINGS_REFUSED
from services.session_binding import pages
from services.session_binding.runtime import Runtime

RETRY_AFTER_S = 5
UNNAMED_EVENT = "request_refused"  # a refusal from a route that `events` does not name


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


class Who(TypedDict):
    """Who a refusal concerns, for its security event."""

    user_key: str
    session_uri: str


def who(identity: AlbIdentity, session_uri: str) -> Who:
    return Who(user_key=identity.user_key, session_uri=session_uri)


def sign_in_refusal(exc: SignInError, *, session_uri: str | None) -> Refusal:
    if isinstance(exc, SignInUnchecked):
        return Refusal(503, exc.reason, pages.SIGN_IN_UNCHECKED, session_uri=session_uri, retry_after=RETRY_AFTER_S)
    return Refusal(401, f"not_signed_in:{exc.reason}", pages.NOT_SIGNED_IN, session_uri=session_uri)


def add_refusal_handlers(app: FastAPI, *, events: Mapping[str, str]) -> None:
    """Answer refusals, sign-in errors included; `events` names each route's security event by its path."""

    async def refused(request: Request, refusal: Refusal) -> Response:
        # A route missing from `events` still refuses with its page, its event and its metric (never a 500).
        route = request.scope.get("route")
        return render_refusal(request.app.state.runtime(), events.get(getattr(route, "path", ""), UNNAMED_EVENT), refusal)

    async def sign_in_refused(request: Request, exc: SignInError) -> Response:
        # A landing's parameters are checked before the sign-in, so its session is known (and named in the event).
        return await refused(request, sign_in_refusal(exc, session_uri=getattr(request.state, "session_uri", None)))

    app.add_exception_handler(Refusal, refused)  # type: ignore[arg-type]  # Starlette types handlers loosely
    app.add_exception_handler(SignInError, sign_in_refused)  # type: ignore[arg-type]


def render_refusal(rt: Runtime, event: str, refusal: Refusal) -> Response:
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
