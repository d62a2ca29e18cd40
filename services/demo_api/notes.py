"""Notes: a person's short texts, oldest first, in the demo API's table (`table.py` has the key layout).

A note's sort key is its id, 28 lowercase hex digits; the person's note counter is `#count`. Listing
reads the key range `0`…`g` of the caller's partition, which holds the notes and nothing else.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from services.demo_api.table import DemoTable, new_item_id, timestamp

COUNTER_ID = "#count"  # note ids are hex, so this never names a note
NOTE_IDS = ("0", "g")  # the sort-key range of notes: every hex id, no task and no counter


@dataclass(frozen=True, slots=True)
class Note:
    id: str
    text: str
    created_at: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


class NotesStore(Protocol):
    def list_notes(self, sub: str) -> list[Note]:
        """The user's notes, oldest first."""
        ...

    def add_note(self, sub: str, text: str, *, limit: int) -> Note:
        """Store a new note; raise `table.LimitReached` when the user already has `limit` notes."""
        ...


def new_note(text: str, *, now: float | None = None) -> Note:
    moment = time.time() if now is None else now
    return Note(id=new_item_id(moment), text=text, created_at=timestamp(moment))


class DynamoDbNotesStore:
    """Notes in the demo API's DynamoDB table."""

    def __init__(self, table: DemoTable) -> None:
        self._table = table

    def list_notes(self, sub: str) -> list[Note]:
        first, last = NOTE_IDS
        items = self._table.query(sub, "#id BETWEEN :first AND :last", {":first": first, ":last": last})
        return [_note(item) for item in items]

    def add_note(self, sub: str, text: str, *, limit: int) -> Note:
        note = new_note(text)
        item = {"id": {"S": note.id}, "text": {"S": note.text}, "created_at": {"S": note.created_at}}
        self._table.add_counted(sub, item, counter_id=COUNTER_ID, limit=limit)
        return note


def _note(item: dict[str, Any]) -> Note:
    return Note(id=item["id"]["S"], text=item["text"]["S"], created_at=item["created_at"]["S"])
