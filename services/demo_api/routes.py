"""The demo API's routes: the caller's profile, and their notes. The user is always the verified token's `sub`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from services.common.errors import ApiError
from services.demo_api.auth import NotesReader, NotesWriter, ProfileReader
from services.demo_api.bodies import json_body, note_in
from services.demo_api.errors import RETRY_AFTER_S
from services.demo_api.notes import NoteLimitReached, StoreUnavailable
from services.demo_api.runtime import DemoRuntime

MAX_NOTES_PER_USER = 100

router = APIRouter(tags=["demo-api"])


@router.get("/profile")
async def profile(token: ProfileReader) -> dict[str, str | None]:
    return {"sub": token.sub, "username": token.username}


@router.get("/notes")
async def list_notes(token: NotesReader, rt: DemoRuntime) -> dict[str, list[dict[str, str]]]:
    notes = await _stored(functools.partial(rt.store.list_notes, token.sub))
    return {"notes": [note.as_json() for note in notes]}


@router.post("/notes", status_code=201)
async def add_note(request: Request, token: NotesWriter, rt: DemoRuntime) -> JSONResponse:
    # The body is read only after the token passed: an anonymous caller learns nothing about body rules.
    body = note_in(await json_body(request))
    try:
        note = await _stored(functools.partial(rt.store.add_note, token.sub, body.text, limit=MAX_NOTES_PER_USER))
    except NoteLimitReached:
        raise ApiError(
            409, "note_limit_reached", f"You already have {MAX_NOTES_PER_USER} notes, the most this demo keeps per person."
        ) from None
    return JSONResponse(note.as_json(), status_code=201)


async def _stored(call: Callable[[], Any]) -> Any:
    """Run a store call in a worker thread (boto3 blocks); a throttled or unreachable table is a 503."""
    try:
        return await anyio.to_thread.run_sync(call)
    except StoreUnavailable:
        raise ApiError(
            503,
            "temporarily_unavailable",
            "Notes cannot be reached right now. Try again in a few seconds.",
            headers={"retry-after": str(RETRY_AFTER_S)},
        ) from None
