"""The agent's routes: the chat UI, who is signed in, sign-out, and a chat turn as server-sent events."""

from __future__ import annotations

import logging
import time

import anyio
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from services.agent.assets import page
from services.agent.chat_request import read_chat_request
from services.agent.loop import ChatContext, run_turn, with_heartbeat
from services.agent.runtime import AgentRuntime, Runtime
from services.agent.sign_out import SIGNED_OUT_PATH, expire_alb_session
from services.agent.slots import ChatStream
from services.common.alb_identity import AlbIdentity
from services.common.bodies import read_empty_json
from services.common.errors import ApiError
from services.common.flow import FlowError, FlowToken, read_flow_token
from services.common.identity import CurrentUser
from services.common.logs import hashed

_log = logging.getLogger("agent")

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> Response:
    return page("index.html")


@router.get("/api/session")
async def session(identity: CurrentUser) -> dict[str, str | None]:
    """Who is signed in: an opaque digest (the UI keeps its history per person with it) and, to show in the
    header, the email address the sign-in provider vouched for (None when it sent none)."""
    return {"user": hashed(identity.user_key), "email": identity.email}


@router.post("/api/sign-out")
async def sign_out(request: Request, rt: AgentRuntime, identity: CurrentUser) -> Response:
    """Expire the ALB session cookies and answer where the browser goes next: the sign-in provider's logout.
    A JSON body is required, which a cross-site form cannot send (as for /api/chat)."""
    await read_empty_json(request)
    _log.info("signed_out", extra={"event": "signed_out", "user": hashed(identity.user_key)})
    rt.tokens.evict(identity)  # no outbound token of this person is reused after sign-out (in this task)
    response = JSONResponse({"location": rt.settings.sign_out_url}, headers={"cache-control": "no-store"})
    expire_alb_session(response)
    return response


@router.get(SIGNED_OUT_PATH, include_in_schema=False)
async def signed_out() -> Response:
    """Where the sign-in provider's logout returns the browser; needs no session (its listener rule signs nobody in)."""
    response = page("signed-out.html", headers={"cache-control": "no-store"})
    expire_alb_session(response)  # again: a browser that came here some other way is signed out too
    return response


def _resumed(rt: Runtime, identity: AlbIdentity, token: str | None) -> FlowToken | None:
    """The consent session a resumed request came back from, if the token is ours, this person's and current."""
    if token is None:
        return None
    try:
        flow = read_flow_token(rt.keyring, token, now=int(time.time()))
    except FlowError:
        return None  # expired or not ours: the request runs as a new one
    provider = rt.settings.provider_of(flow.provider)
    if not flow.owned_by(identity) or provider is None or flow.scopes != provider.scope_set:
        return None
    return flow


@router.post("/api/chat")
async def chat(request: Request, rt: AgentRuntime, identity: CurrentUser) -> Response:
    body = await read_chat_request(request, rt.settings)
    agentcore_limiter = rt.tokens.limiter()
    if agentcore_limiter.available_tokens == 0 and agentcore_limiter.statistics().tasks_waiting >= rt.settings.agentcore_max_waiting:
        raise ApiError(503, "busy", "The agent is busy right now. Please try again in a few seconds.", headers={"retry-after": "5"})
    release = rt.slots.take(identity.user_key)
    bedrock = rt.bedrock.peek() or await anyio.to_thread.run_sync(rt.bedrock.get)  # built once, off the event loop
    context = ChatContext(
        identity=identity,
        settings=rt.settings,
        tokens=rt.tokens,
        connections=rt.connections,
        keyring=rt.keyring,
        tools=rt.tools,
        http=rt.http,
        bedrock=bedrock,
        bedrock_limiter=rt.bedrock_limiter(),
        metrics=rt.metrics,
        resumed=_resumed(rt, identity, body.after_consent),
    )
    history: list[tuple[str, str]] = (
        [(item.role, item.text) for item in body.history[-rt.settings.max_history :]] if rt.settings.max_history else []
    )
    events = run_turn(context, body.message, history)
    return ChatStream(with_heartbeat(events, heartbeat_s=rt.settings.heartbeat_s, turn_timeout_s=rt.settings.turn_timeout_s), release)
