"""The demo API's routes: the caller's profile, notes and tasks. The user is always the verified token's `sub`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from services.common.errors import ApiError
from services.demo_api.auth import NotesReader, NotesWriter, ProfileReader, TasksReader, TasksWriter
from services.demo_api.bodies import json_body, note_in, task_in
from services.demo_api.errors import RETRY_AFTER_S
from services.demo_api.runtime import DemoRuntime
from services.demo_api.table import LimitReached, StoreUnavailable
from services.demo_api.tasks import TaskNotFound

MAX_NOTES_PER_USER = 100
MAX_TASKS_PER_USER = 100

router = APIRouter(tags=["demo-api"])


@router.get("/profile")
async def profile(token: ProfileReader) -> dict[str, str | None]:
    return {"sub": token.sub, "username": token.username}


@router.get("/notes")
async def list_notes(token: NotesReader, rt: DemoRuntime) -> dict[str, list[dict[str, str]]]:
    notes = await _stored(functools.partial(rt.notes.list_notes, token.sub), "Notes")
    return {"notes": [note.as_json() for note in notes]}


@router.post("/notes", status_code=201)
async def add_note(request: Request, token: NotesWriter, rt: DemoRuntime) -> JSONResponse:
    # The body is read only after the token passed: an anonymous caller learns nothing about body rules.
    body = note_in(await json_body(request))
    try:
        note = await _stored(functools.partial(rt.notes.add_note, token.sub, body.text, limit=MAX_NOTES_PER_USER), "Notes")
    except LimitReached:
        raise ApiError(
            409, "note_limit_reached", f"You already have {MAX_NOTES_PER_USER} notes, the most this demo keeps per person."
        ) from None
    return JSONResponse(note.as_json(), status_code=201)


@router.get("/tasks")
async def list_tasks(token: TasksReader, rt: DemoRuntime) -> dict[str, list[dict[str, str | bool]]]:
    tasks = await _stored(functools.partial(rt.tasks.list_tasks, token.sub), "Tasks")
    return {"tasks": [task.as_json() for task in tasks]}


@router.post("/tasks", status_code=201)
async def add_task(request: Request, token: TasksWriter, rt: DemoRuntime) -> JSONResponse:
    body = task_in(await json_body(request))  # after the token, as for notes
    try:
        task = await _stored(functools.partial(rt.tasks.add_task, token.sub, body.text, limit=MAX_TASKS_PER_USER), "Tasks")
    except LimitReached:
        raise ApiError(
            409,
            "task_limit_reached",
            f"You already have {MAX_TASKS_PER_USER} tasks, done ones included, the most this demo keeps per person.",
        ) from None
    return JSONResponse(task.as_json(), status_code=201)


@router.post("/tasks/{task_id}/done")
async def complete_task(task_id: str, token: TasksWriter, rt: DemoRuntime) -> dict[str, str | bool]:
    try:
        task = await _stored(functools.partial(rt.tasks.complete_task, token.sub, task_id), "Tasks")
    except TaskNotFound:
        # The same answer whether the id is malformed, unused or another person's: nothing to learn about others.
        raise ApiError(404, "task_not_found", "You have no task with this id. List your tasks (GET /tasks) to see their ids.") from None
    result: dict[str, str | bool] = task.as_json()
    return result


async def _stored(call: Callable[[], Any], what: str) -> Any:
    """Run a store call in a worker thread (boto3 blocks); a throttled or unreachable table is a 503."""
    try:
        return await anyio.to_thread.run_sync(call)
    except StoreUnavailable:
        raise ApiError(
            503,
            "temporarily_unavailable",
            f"{what} cannot be reached right now. Try again in a few seconds.",
            headers={"retry-after": str(RETRY_AFTER_S)},
        ) from None
