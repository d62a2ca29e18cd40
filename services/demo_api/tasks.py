"""Tasks: a person's to-do list, newest first, in the demo API's table (`table.py` has the key layout).

A task is created open and can be marked done (again and again: the answer stays the same); this demo
neither reopens nor deletes one. Its public id is 28 lowercase hex digits, its sort key that id behind
the prefix `task#`, so tasks never fall in the key range of notes. The person's task counter is
`#count#task`, apart from the note counter: each kind has its own limit.

Marking done is one conditional `UpdateItem` on the caller's partition: a task id of another person
(or none at all) finds no item there and is `TaskNotFound`, with nothing written.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from services.demo_api.table import DemoTable, new_item_id, timestamp

TASK_PREFIX = "task#"
COUNTER_ID = "#count#task"  # outside the `task#` prefix: never listed as a task
TASK_ID = re.compile(r"[0-9a-f]{28}")


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    text: str
    done: bool
    created_at: str

    def as_json(self) -> dict[str, str | bool]:
        return asdict(self)


class TaskNotFound(Exception):
    """The person has no task with this id (whoever else may have one)."""


class TasksStore(Protocol):
    def list_tasks(self, sub: str) -> list[Task]:
        """The user's tasks, newest first."""
        ...

    def add_task(self, sub: str, text: str, *, limit: int) -> Task:
        """Store a new open task; raise `table.LimitReached` when the user already has `limit` tasks."""
        ...

    def complete_task(self, sub: str, task_id: str) -> Task:
        """Mark the user's task done and return it; raise TaskNotFound when the user has no such task."""
        ...


def new_task(text: str, *, now: float | None = None) -> Task:
    moment = time.time() if now is None else now
    return Task(id=new_item_id(moment), text=text, done=False, created_at=timestamp(moment))


class DynamoDbTasksStore:
    """Tasks in the demo API's DynamoDB table, next to the notes."""

    def __init__(self, table: DemoTable) -> None:
        self._table = table

    def list_tasks(self, sub: str) -> list[Task]:
        items = self._table.query(sub, "begins_with(#id, :prefix)", {":prefix": TASK_PREFIX}, newest_first=True)
        return [_task(item) for item in items]

    def add_task(self, sub: str, text: str, *, limit: int) -> Task:
        task = new_task(text)
        item = {
            "id": {"S": TASK_PREFIX + task.id},
            "text": {"S": task.text},
            "done": {"BOOL": task.done},
            "created_at": {"S": task.created_at},
        }
        self._table.add_counted(sub, item, counter_id=COUNTER_ID, limit=limit)
        return task

    def complete_task(self, sub: str, task_id: str) -> Task:
        if not TASK_ID.fullmatch(task_id):  # the key is only ever built from a well-formed id
            raise TaskNotFound
        item = self._table.update_existing(
            sub, TASK_PREFIX + task_id, update="SET #done = :done", names={"#done": "done"}, values={":done": {"BOOL": True}}
        )
        if item is None:
            raise TaskNotFound
        return _task(item)


def _task(item: dict[str, Any]) -> Task:
    return Task(
        id=item["id"]["S"].removeprefix(TASK_PREFIX),
        text=item["text"]["S"],
        done=item["done"]["BOOL"],
        created_at=item["created_at"]["S"],
    )
