"""The notes store: against a real table on the local DynamoDB server, and the exact requests it sends.

Behaviour (ordering, users kept apart, the limit under racing writes) is checked on a table of the
local DynamoDB server (`local/dynamodb.py`), reached as on Lambda: through the environment. The
requests and the mapping of DynamoDB's errors are checked with botocore's Stubber, which validates
every request against the DynamoDB service model (parameter names, shapes, types) without a network call.
"""

from __future__ import annotations

import re
import socket
import threading
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from local.dynamodb import CREDENTIALS
from services.demo_api.notes import COUNTER_ID, DynamoDbNotesStore, new_note
from services.demo_api.table import DemoTable, LimitReached, StoreUnavailable
from tests.services.demo_api.conftest import ALICE, BOB, REGION

TABLE = "agentcore-ecs-sandbox-notes"


def test_note_ids_are_time_ordered_hex_and_timestamps_utc() -> None:
    first = new_note("a", now=1_800_000_000.123)
    second = new_note("b", now=1_800_000_000.124)
    assert re.fullmatch(r"[0-9a-f]{28}", first.id)
    assert first.id < second.id
    assert first.created_at == "2027-01-15T08:00:00.123Z"
    assert first.as_json() == {"id": first.id, "text": "a", "created_at": first.created_at}


# ------------------------------------------------------------------------------ on the local DynamoDB server


@pytest.fixture
def store(notes_table: str) -> DynamoDbNotesStore:
    return DynamoDbNotesStore(DemoTable(notes_table, region=REGION))  # the client from the environment, as on Lambda


def test_store_keeps_users_apart_and_in_order(store: DynamoDbNotesStore) -> None:
    a1 = store.add_note(ALICE, "one", limit=10)
    store.add_note(BOB, "bob", limit=10)
    a2 = store.add_note(ALICE, "two", limit=10)
    assert store.list_notes(ALICE) == [a1, a2]
    assert [n.text for n in store.list_notes(BOB)] == ["bob"]
    assert store.list_notes("nobody") == []


def test_store_limit_holds_under_concurrent_writes(store: DynamoDbNotesStore) -> None:
    refused: list[int] = []

    def write() -> None:
        for _ in range(10):
            try:
                store.add_note(ALICE, "x", limit=25)
            except LimitReached:
                refused.append(1)

    threads = [threading.Thread(target=write) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.list_notes(ALICE)) == 25
    assert len(refused) == 25  # a refused write stored nothing: the note and the counter are one transaction


def test_store_returns_fresh_lists(store: DynamoDbNotesStore) -> None:
    store.add_note(ALICE, "one", limit=10)
    store.list_notes(ALICE).clear()
    assert len(store.list_notes(ALICE)) == 1


def test_a_table_that_cannot_be_reached_is_unavailable_not_an_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.session.Session(**CREDENTIALS).client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"total_max_attempts": 1}, proxies={}),
    )
    store = DynamoDbNotesStore(DemoTable(TABLE, region=REGION, client=client))
    with pytest.raises(StoreUnavailable):
        store.list_notes(ALICE)
    with pytest.raises(StoreUnavailable):
        store.add_note(ALICE, "x", limit=10)


# ------------------------------------------------------------------------------ DynamoDB requests


@pytest.fixture
def dynamodb() -> Any:
    credentials = {"aws_access_key_id": "AKIDSTUB", "aws_secret_access_key": "stubbed"}
    return boto3.session.Session(**credentials).client("dynamodb", region_name="eu-west-1")


def _item(sub: str, note_id: str, text: str) -> dict[str, Any]:
    return {"sub": {"S": sub}, "id": {"S": note_id}, "text": {"S": text}, "created_at": {"S": "2026-01-01T00:00:00.000Z"}}


def test_list_queries_the_note_key_range_of_one_partition_and_pages_through(dynamodb: Any) -> None:
    """The key range, not a filter, keeps counters and tasks out: DynamoDB never returns them."""
    store = DynamoDbNotesStore(DemoTable(TABLE, region="eu-west-1", client=dynamodb))
    query = {
        "TableName": TABLE,
        "KeyConditionExpression": "#sub = :sub AND #id BETWEEN :first AND :last",
        "ExpressionAttributeNames": {"#sub": "sub", "#id": "id"},
        "ExpressionAttributeValues": {":sub": {"S": ALICE}, ":first": {"S": "0"}, ":last": {"S": "g"}},
        "ConsistentRead": True,
        "ScanIndexForward": True,
    }
    last_key = {"sub": {"S": ALICE}, "id": {"S": "0002"}}
    with Stubber(dynamodb) as stub:
        stub.add_response("query", {"Items": [_item(ALICE, "0001", "a")], "LastEvaluatedKey": last_key}, query)
        stub.add_response("query", {"Items": [_item(ALICE, "0002", "b")]}, {**query, "ExclusiveStartKey": last_key})
        notes = store.list_notes(ALICE)
        stub.assert_no_pending_responses()
    assert [(n.id, n.text) for n in notes] == [("0001", "a"), ("0002", "b")]


def test_add_is_one_transaction_of_counter_update_and_note_put(dynamodb: Any) -> None:
    seen: list[dict[str, Any]] = []
    dynamodb.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", lambda params, **_: seen.append(params))
    store = DynamoDbNotesStore(DemoTable(TABLE, region="eu-west-1", client=dynamodb))
    with Stubber(dynamodb) as stub:
        stub.add_response("transact_write_items", {})
        note = store.add_note(ALICE, "hello", limit=100)
        stub.assert_no_pending_responses()
    [params] = seen
    update, put = params["TransactItems"]
    assert update["Update"]["Key"] == {"sub": {"S": ALICE}, "id": {"S": COUNTER_ID}}
    assert update["Update"]["ConditionExpression"] == "attribute_not_exists(#count) OR #count < :limit"
    assert update["Update"]["ExpressionAttributeValues"][":limit"] == {"N": "100"}
    assert put["Put"]["Item"]["sub"] == {"S": ALICE}
    assert put["Put"]["Item"]["id"] == {"S": note.id}
    assert put["Put"]["ConditionExpression"] == "attribute_not_exists(#id)"


def test_a_failed_counter_condition_means_the_limit_is_reached(dynamodb: Any) -> None:
    store = DynamoDbNotesStore(DemoTable(TABLE, region="eu-west-1", client=dynamodb))
    with Stubber(dynamodb) as stub:
        stub.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            http_status_code=400,
            modeled_fields={"CancellationReasons": [{"Code": "ConditionalCheckFailed"}, {"Code": "None"}]},
        )
        with pytest.raises(LimitReached):
            store.add_note(ALICE, "one too many", limit=100)


def test_throttling_and_conflicts_are_unavailable_not_errors(dynamodb: Any) -> None:
    store = DynamoDbNotesStore(DemoTable(TABLE, region="eu-west-1", client=dynamodb))
    with Stubber(dynamodb) as stub:
        stub.add_client_error("query", service_error_code="ProvisionedThroughputExceededException", http_status_code=400)
        with pytest.raises(StoreUnavailable):
            store.list_notes(ALICE)
        stub.add_client_error(
            "transact_write_items",
            service_error_code="TransactionCanceledException",
            http_status_code=400,
            modeled_fields={"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]},
        )
        with pytest.raises(StoreUnavailable):
            store.add_note(ALICE, "x", limit=100)
