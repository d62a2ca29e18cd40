"""The agent's routes: the chat UI, who is signed in, and a chat turn as server-sent events."""

from __future__ import annotations

from pathlib import Path

import anyio
from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from services.agent.chat_request import read_chat_request
from services.agent.loop import ChatContext, run_turn, with_heartbeat
from services.agent.runtime import AgentRuntime
from services.agent.slots import ChatStream
from services.common.errors import ApiError
from services.common.identity import CurrentUser
from services.common.logs import hashed

STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/api/session")
async def session(identity: CurrentUser) -> dict[str, str | None]:
    """Who is signed in, as an opaque digest: the UI keeps its history per person with it."""
    return {"user": hashed(identity.user_key)}


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
