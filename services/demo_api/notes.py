"""Where notes live: a DynamoDB table, in AWS and locally (the local stack and the tests run a
DynamoDB-compatible server, `local/dynamodb.py`, reached through `AWS_ENDPOINT_URL_DYNAMODB`).

Every operation takes the owner's `sub` (from the verified token) as the partition key, so one
user's request can only ever read or write that user's partition.

Table layout: partition key `sub` (S), sort key `id` (S). Note ids are time-ordered (milliseconds in
hex, then random hex), so a query returns notes oldest first. Next to a user's notes sits one counter
item (`id` = `#count`) that the write transaction increments under a condition, which makes the
per-user limit exact even when two writes race.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

COUNTER_ID = "#count"  # note ids are hex, so this never names a note
_TRANSIENT = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable"}
)


@dataclass(frozen=True, slots=True)
class Note:
    id: str
    text: str
    created_at: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


class NoteLimitReached(Exception):
    """The user already has the maximum number of notes."""


class StoreUnavailable(Exception):
    """The store is throttling or unreachable: nothing was written, try again later."""


class NotesStore(Protocol):
    def list_notes(self, sub: str) -> list[Note]:
        """The user's notes, oldest first."""
        ...

    def add_note(self, sub: str, text: str, *, limit: int) -> Note:
        """Store a new note; raise NoteLimitReached when the user already has `limit` notes."""
        ...


def new_note(text: str, *, now: float | None = None) -> Note:
    moment = time.time() if now is None else now
    created = datetime.fromtimestamp(moment, UTC)
    return Note(
        id=f"{int(moment * 1000):012x}{secrets.token_hex(8)}",
        text=text,
        created_at=created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z",
    )


class DynamoDbNotesStore:
    """Notes in DynamoDB. One client per process, built on first use (keeps Lambda cold starts short)."""

    def __init__(self, table_name: str, *, region: str, client: Any = None) -> None:
        self._table = table_name
        self._region = region
        self._client: Any = client
        self._lock = threading.Lock()

    def _dynamodb(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    config = Config(
                        region_name=self._region,
                        retries={"mode": "standard", "total_max_attempts": 3},
                        connect_timeout=1,
                        read_timeout=2,
                        user_agent_appid="agentcore-ecs-demo-api",
                    )
                    self._client = boto3.session.Session().client("dynamodb", config=config)
        return self._client

    def list_notes(self, sub: str) -> list[Note]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#sub = :sub",
            "ExpressionAttributeNames": {"#sub": "sub"},
            "ExpressionAttributeValues": {":sub": {"S": sub}},
            "ConsistentRead": True,  # a note just written shows up in the next list
        }
        notes: list[Note] = []
        while True:
            page = self._call("query", **request)
            notes += [_note(item) for item in page.get("Items", []) if item["id"]["S"] != COUNTER_ID]
            if "LastEvaluatedKey" not in page:
                return notes
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def add_note(self, sub: str, text: str, *, limit: int) -> Note:
        note = new_note(text)
        count_up = {
            "TableName": self._table,
            "Key": {"sub": {"S": sub}, "id": {"S": COUNTER_ID}},
            "UpdateExpression": "ADD #count :one",
            "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
            "ExpressionAttributeNames": {"#count": "count"},
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(limit)}},
        }
        put = {
            "TableName": self._table,
            "Item": {"sub": {"S": sub}, "id": {"S": note.id}, "text": {"S": note.text}, "created_at": {"S": note.created_at}},
            "ConditionExpression": "attribute_not_exists(#id)",  # ids are random: a clash is refused, never overwritten
            "ExpressionAttributeNames": {"#id": "id"},
        }
        try:
            self._call("transact_write_items", TransactItems=[{"Update": count_up}, {"Put": put}])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise NoteLimitReached from None
            raise
        return note

    def _call(self, operation: str, **request: Any) -> Any:
        try:
            return getattr(self._dynamodb(), operation)(**request)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _TRANSIENT or (code == "TransactionCanceledException" and _throttled(exc)):
                raise StoreUnavailable(code) from None
            raise
        except BotoCoreError as exc:  # connection errors, timeouts, credentials not yet available
            raise StoreUnavailable(type(exc).__name__) from None


def _throttled(exc: ClientError) -> bool:
    reasons = exc.response.get("CancellationReasons") or []
    return any(reason.get("Code") in {"ThrottlingError", "TransactionConflict"} for reason in reasons)


def _note(item: dict[str, Any]) -> Note:
    return Note(id=item["id"]["S"], text=item["text"]["S"], created_at=item["created_at"]["S"])
