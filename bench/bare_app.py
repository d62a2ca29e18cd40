"""The references: bare FastAPI endpoints doing the least their counterparts must, with no checks and no calls.

* `GET /bare`: a page of the size the session binding service answers (the binding benchmark's reference;
  also the start-up benchmark's "healthy" probe, since this app has nothing else to start).
* `POST /bare/chat`: the agent's chat request shape in (a JSON body parsed into a model), the agent's answer
  shape out: the same four server-sent events, byte for byte the same size as a chat with one tool call,
  streamed one chunk per event (the agent benchmark's reference).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
_PAGE = "<!doctype html><title>ok</title>" + "x" * 1200


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


_PROFILE = json.dumps([{"json": {"sub": "0" * 36, "username": "0" * 36}}], separators=(",", ":"))
# What the agent streams for "Who am I?" with the benchmark's stand-in model: 349 bytes in four events.
_CHAT_EVENTS = (
    _event("tool_call", {"id": "tooluse_1", "name": "get_profile", "input": {}}),
    _event("tool_result", {"id": "tooluse_1", "name": "get_profile", "ok": True, "summary": "done"}),
    _event("message", {"text": f"Result: {_PROFILE}"}),
    _event("done", {}),
)


class BareChat(BaseModel):
    message: str = Field(min_length=1, max_length=4000)
    history: list[dict[str, Any]] = Field(default_factory=list, max_length=50)


@app.get("/bare")
async def bare() -> HTMLResponse:
    return HTMLResponse(_PAGE)


@app.post("/bare/chat")
async def bare_chat(chat: BareChat) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for event in _CHAT_EVENTS:
            yield event

    return StreamingResponse(events(), media_type="text/event-stream")
