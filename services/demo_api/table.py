"""The demo API's one DynamoDB table, which holds notes and tasks: its client, its errors, its key layout.

In AWS and locally alike (the local stack and the tests run a DynamoDB-compatible server,
`local/dynamodb.py`, reached through `AWS_ENDPOINT_URL_DYNAMODB`).

Partition key `sub` (S): every operation takes the owner's `sub` from the verified token, so one
person's request can only ever read or write that person's partition. Sort key `id` (S), whose
beginning says what the item is:

* 28 lowercase hex digits: a note (`text`, `created_at`), as notes have always been stored;
* `task#` and 28 lowercase hex digits: a task (`text`, `done`, `created_at`);
* `#count`: the person's note counter; `#count#task`: their task counter.

Ids are time-ordered (milliseconds in hex, then random hex), so a kind reads back in creation order.
Notes are read as the key range `0`…`g`, which holds every hex id and nothing else stored here (`#`
sorts before `0`, `t` after `g`); tasks as the key prefix `task#`. So a query for one kind never
returns an item of another, and the notes stored before tasks existed need no change. A new kind
takes a prefix that begins after `g`.

A counter item is incremented under a condition in the same transaction that puts the item it
counts, which makes a per-person limit exact even when two writes race.
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

_TRANSIENT = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable"}
)


class StoreUnavailable(Exception):
    """The table is throttling or unreachable: nothing was written, try again later."""


class LimitReached(Exception):
    """The person already has the maximum number of items of this kind."""


def new_item_id(moment: float) -> str:
    """28 lowercase hex digits: milliseconds since the epoch, then 8 random bytes (ids sort by creation time)."""
    return f"{int(moment * 1000):012x}{secrets.token_hex(8)}"


def timestamp(moment: float) -> str:
    """UTC to the millisecond, e.g. `2027-01-15T08:00:00.123Z`."""
    created = datetime.fromtimestamp(moment, UTC)
    return created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z"


class DemoTable:
    """The table's operations on one person's partition. One client per process, built on first use
    (keeps Lambda cold starts short), shared by the notes and the tasks store."""

    def __init__(self, name: str, *, region: str, client: Any = None) -> None:
        self.name = name
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

    def query(self, sub: str, id_condition: str, values: dict[str, str], *, newest_first: bool = False) -> list[dict[str, Any]]:
        """Every item of `sub`'s partition whose sort key (`#id`) meets `id_condition`, through all pages.

        Consistent reads: an item just written shows up in the next list.
        """
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": f"#sub = :sub AND {id_condition}",
            "ExpressionAttributeNames": {"#sub": "sub", "#id": "id"},
            "ExpressionAttributeValues": {":sub": {"S": sub}} | {name: {"S": value} for name, value in values.items()},
            "ConsistentRead": True,
            "ScanIndexForward": not newest_first,
        }
        items: list[dict[str, Any]] = []
        while True:
            page = self._call("query", **request)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def add_counted(self, sub: str, item: dict[str, Any], *, counter_id: str, limit: int) -> None:
        """Put `item` (typed attributes, `id` included) in `sub`'s partition and count it in `counter_id`,
        as one transaction; raise LimitReached, writing nothing, when the counter is already at `limit`."""
        count_up = {
            "TableName": self.name,
            "Key": {"sub": {"S": sub}, "id": {"S": counter_id}},
            "UpdateExpression": "ADD #count :one",
            "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
            "ExpressionAttributeNames": {"#count": "count"},
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(limit)}},
        }
        put = {
            "TableName": self.name,
            "Item": {"sub": {"S": sub}, **item},
            "ConditionExpression": "attribute_not_exists(#id)",  # ids are random: a clash is refused, never overwritten
            "ExpressionAttributeNames": {"#id": "id"},
        }
        try:
            self._call("transact_write_items", TransactItems=[{"Update": count_up}, {"Put": put}])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise LimitReached from None
            raise

    def update_existing(
        self, sub: str, item_id: str, *, update: str, names: dict[str, str], values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Apply `update` to the item `item_id` of `sub`'s partition and return all its attributes after;
        None, changing nothing, when there is no such item (UpdateItem alone would create one)."""
        try:
            answer = self._call(
                "update_item",
                TableName=self.name,
                Key={"sub": {"S": sub}, "id": {"S": item_id}},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(#id)",
                ExpressionAttributeNames={"#id": "id", **names},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        attributes: dict[str, Any] = answer["Attributes"]
        return attributes

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
