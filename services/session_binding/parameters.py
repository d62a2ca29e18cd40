"""The query parameters of the two routes, as dependencies declared before `CurrentUser`: a malformed
link is 400 whoever opens it, signed in or not, so these are checked before the sign-in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.common.flow import is_session_uri
from services.session_binding import pages
from services.session_binding.refusal import Refusal
from services.session_binding.runtime import BindingRuntime


async def flow_parameter(request: Request) -> str:
    """The start link's one signed flow token, still unverified."""
    values = request.query_params.getlist("flow")
    if len(values) != 1 or not values[0]:
        raise Refusal(400, "flow_missing" if not values else "flow_duplicate", pages.MALFORMED)
    return values[0]


FlowParameter = Annotated[str, Depends(flow_parameter)]


@dataclass(frozen=True)
class LandingParameters:
    """The sessionUri of a landing, and AgentCore's echo of customState (None when absent)."""

    session_uri: str
    state: str | None


async def landing_parameters(request: Request, rt: BindingRuntime) -> LandingParameters:
    query = request.query_params
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
    request.state.session_uri = values[0]  # a refused sign-in names this session in its security event
    return LandingParameters(values[0], states[0] if states else None)


LandingQuery = Annotated[LandingParameters, Depends(landing_parameters)]
