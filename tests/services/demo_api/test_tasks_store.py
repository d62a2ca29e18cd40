"""The tasks store, and tasks next to notes in one table: against the local DynamoDB server, and the exact requests.

As in `test_notes_store.py`: behaviour (order, people kept apart, notes and tasks kept apart, the
limit under racing writes) on a table of the local DynamoDB server (`local/dynamodb.py`); the requests
and the mapping of DynamoDB's answers with botocore's Stubber, which validates every request against
the DynamoDB service model without a network call.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from local.dynamodb import LocalDynamoDB
from services.demo_api.notes import COUNTER_ID as NOTE_COUNTER_ID, DynamoDbNotesStore
from services.demo_api.table import DemoTable, LimitReached, StoreUnavailable
from services.demo_api.tasks import COUNTER_ID, DynamoDbTasksStore, Task, TaskNotFound, new_task
from tests.services.demo_api.conftest import ALICE, BOB, REGION

TABLE = "agentcore-ecs-sandbox-notes"
LEGACY_NOTE_ID = "0190a1b2c3d4e5f6a7b8c9d0e1f2"  # a note as stored before tasks existed: 28 hex digits, no prefix


def test_task_ids_are_time_ordered_hex_and_a_new_task_is_open() -> None:
    first = new_task("a", now=1_800_000_000.123)
    second = new_task("b", now=1_800_000_000.124)
    assert re.fullmatch(r"[0-9a-f]{28}", first.id)
    assert first.id < second.id
    assert first.as_json() == {"id": first.id, "text": "a", "done": False, "created_at": "2027-01-15T08:00:00.123Z"}


# ------------------------------------------------------------------------------ on the local DynamoDB server


@pytest.fixture
def table(notes_table: str) -> DemoTable:
    return DemoTable(notes_table, region=REGION)  # the client from the environment, as on Lambda


@pytest.fixture
def tasks(table: DemoTable) -> DynamoDbTasksStore:
    return DynamoDbTasksStore(table)


@pytest.fixture
def notes(table: DemoTable) -> DynamoDbNotesStore:
    return DynamoDbNotesStore(table)


def test_tasks_list_newest_first_and_people_apart(tasks: DynamoDbTasksStore) -> None:
    first = tasks.add_task(ALICE, "one", limit=10)
    tasks.add_task(BOB, "bob's", limit=10)
    second = tasks.add_task(ALICE, "two", limit=10)
    assert tasks.list_tasks(ALICE) == [second, first]
    assert [t.text for t in tasks.list_tasks(BOB)] == ["bob's"]
    assert tasks.list_tasks("nobody") == []


def test_completing_a_task_marks_it_done_and_keeps_the_rest(tasks: DynamoDbTasksStore) -> None:
    task = tasks.add_task(ALICE, "water the plants", limit=10)
    other = tasks.add_task(ALICE, "call Bob", limit=10)
    done = tasks.complete_task(ALICE, task.id)
    assert done == Task(id=task.id, text=task.text, done=True, created_at=task.created_at)
    assert tasks.complete_task(ALICE, task.id) == done  # again: same answer
    assert tasks.list_tasks(ALICE) == [other, done]


def test_a_person_cannot_complete_another_persons_task(tasks: DynamoDbTasksStore, local_dynamodb: LocalDynamoDB, notes_table: str) -> None:
    bobs = tasks.add_task(BOB, "bob's", limit=10)
    with pytest.raises(TaskNotFound):
        tasks.complete_task(ALICE, bobs.id)
    assert tasks.list_tasks(BOB) == [bobs]  # still open
    alices_partition = local_dynamodb.client().query(
        TableName=notes_table,
        KeyConditionExpression="#sub = :sub",
        ExpressionAttributeNames={"#sub": "sub"},
        ExpressionAttributeValues={":sub": {"S": ALICE}},
    )
    assert alices_partition["Items"] == []  # no item was created in Alice's partition either


@pytest.mark.parametrize("task_id", ["0" * 28, "nope", "", "0" * 27, "A" * 28, "0" * 28 + "/x", "#count#task"])
def test_an_unknown_or_malformed_task_id_is_not_found(tasks: DynamoDbTasksStore, task_id: str) -> None:
    tasks.add_task(ALICE, "mine", limit=10)
    with pytest.raises(TaskNotFound):
        tasks.complete_task(ALICE, task_id)


def test_notes_and_tasks_never_mix(notes: DynamoDbNotesStore, tasks: DynamoDbTasksStore) -> None:
    note = notes.add_note(ALICE, "a note", limit=10)
    task = tasks.add_task(ALICE, "a task", limit=10)
    assert notes.list_notes(ALICE) == [note]
    assert tasks.list_tasks(ALICE) == [task]
    with pytest.raises(TaskNotFound):
        tasks.complete_task(ALICE, note.id)  # a note's id names no task
    assert notes.list_notes(ALICE) == [note]


def test_notes_stored_before_tasks_existed_still_list(
    local_dynamodb: LocalDynamoDB, notes_table: str, notes: DynamoDbNotesStore, tasks: DynamoDbTasksStore
) -> None:
    raw = local_dynamodb.client()
    legacy = {"sub": {"S": ALICE}, "id": {"S": LEGACY_NOTE_ID}, "text": {"S": "old"}, "created_at": {"S": "2024-07-01T00:00:00.000Z"}}
    raw.put_item(TableName=notes_table, Item=legacy)
    raw.put_item(TableName=notes_table, Item={"sub": {"S": ALICE}, "id": {"S": NOTE_COUNTER_ID}, "count": {"N": "1"}})
    tasks.add_task(ALICE, "new", limit=10)
    assert [(n.id, n.text) for n in notes.list_notes(ALICE)] == [(LEGACY_NOTE_ID, "old")]
    assert [t.text for t in tasks.list_tasks(ALICE)] == ["new"]
    with pytest.raises(LimitReached):
        notes.add_note(ALICE, "second", limit=1)  # the old counter still counts the old note


def test_notes_and_tasks_have_separate_limits(notes: DynamoDbNotesStore, tasks: DynamoDbTasksStore) -> None:
    for i in range(3):
        tasks.add_task(ALICE, f"task {i}", limit=3)
    with pytest.raises(LimitReached):
        tasks.add_task(ALICE, "one too many", limit=3)
    assert notes.add_note(ALICE, "a note", limit=3).text == "a note"
    assert len(tasks.list_tasks(ALICE)) == 3


def test_task_limit_holds_under_concurrent_writes(tasks: DynamoDbTasksStore) -> None:
    refused: list[int] = []

    def write() -> None:
        for _ in range(6):
            try:
                tasks.add_task(ALICE, "x", limit=15)
            except LimitReached:
                refused.append(1)

    threads = [threading.Thread(target=write) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tasks.list_tasks(ALICE)) == 15
    assert len(refused) == 15


# ------------------------------------------------------------------------------ DynamoDB requests


@pytest.fixture
def dynamodb() -> Any:
    credentials = {"aws_access_key_id": "AKIDSTUB", "aws_secret_access_key": "stubbed"}
    return boto3.session.Session(**credentials).client("dynamodb", region_name="eu-west-1")


@pytest.fixture
def stubbed(dynamodb: Any) -> DynamoDbTasksStore:
    return DynamoDbTasksStore(DemoTable(TABLE, region="eu-west-1", client=dynamodb))


def _item(task_id: str, text: str, *, done: bool = False) -> dict[str, Any]:
    return {
        "sub": {"S": ALICE},
        "id": {"S": f"task#{task_id}"},
        "text": {"S": text},
        "done": {"BOOL": done},
        "created_at": {"S": "2026-01-01T00:00:00.000Z"},
    }


def test_list_queries_the_task_prefix_newest_first_and_pages_through(dynamodb: Any, stubbed: DynamoDbTasksStore) -> None:
    query = {
        "TableName": TABLE,
        "KeyConditionExpression": "#sub = :sub AND begins_with(#id, :prefix)",
        "ExpressionAttributeNames": {"#sub": "sub", "#id": "id"},
        "ExpressionAttributeValues": {":sub": {"S": ALICE}, ":prefix": {"S": "task#"}},
        "ConsistentRead": True,
        "ScanIndexForward": False,
    }
    last_key = {"sub": {"S": ALICE}, "id": {"S": "task#0002"}}
    with Stubber(dynamodb) as stub:
        stub.add_response("query", {"Items": [_item("0003", "c")], "LastEvaluatedKey": last_key}, query)
        stub.add_response("query", {"Items": [_item("0002", "b", done=True)]}, {**query, "ExclusiveStartKey": last_key})
        listed = stubbed.list_tasks(ALICE)
        stub.assert_no_pending_responses()
    assert [(t.id, t.text, t.done) for t in listed] == [("0003", "c", False), ("0002", "b", True)]


def test_add_counts_in_the_task_counter_and_puts_a_prefixed_open_task(dynamodb: Any, stubbed: DynamoDbTasksStore) -> None:
    seen: list[dict[str, Any]] = []
    dynamodb.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", lambda params, **_: seen.append(params))
    with Stubber(dynamodb) as stub:
        stub.add_response("transact_write_items", {})
        task = stubbed.add_task(ALICE, "hello", limit=100)
    [params] = seen
    update, put = params["TransactItems"]
    assert update["Update"]["Key"] == {"sub": {"S": ALICE}, "id": {"S": COUNTER_ID}}
    assert update["Update"]["ConditionExpression"] == "attribute_not_exists(#count) OR #count < :limit"
    assert put["Put"]["Item"] == {
        "sub": {"S": ALICE},
        "id": {"S": f"task#{task.id}"},
        "text": {"S": "hello"},
        "done": {"BOOL": False},
        "created_at": {"S": task.created_at},
    }
    assert put["Put"]["ConditionExpression"] == "attribute_not_exists(#id)"
    assert COUNTER_ID != NOTE_COUNTER_ID and not COUNTER_ID.startswith("task#")


def test_complete_is_one_conditional_update_in_the_callers_partition(dynamodb: Any, stubbed: DynamoDbTasksStore) -> None:
    task_id = "0" * 28
    expected = {
        "TableName": TABLE,
        "Key": {"sub": {"S": ALICE}, "id": {"S": f"task#{task_id}"}},
        "UpdateExpression": "SET #done = :done",
        "ConditionExpression": "attribute_exists(#id)",  # never creates a task
        "ExpressionAttributeNames": {"#id": "id", "#done": "done"},
        "ExpressionAttributeValues": {":done": {"BOOL": True}},
        "ReturnValues": "ALL_NEW",
    }
    with Stubber(dynamodb) as stub:
        stub.add_response("update_item", {"Attributes": _item(task_id, "x", done=True)}, expected)
        assert stubbed.complete_task(ALICE, task_id).done is True
        stub.add_client_error("update_item", service_error_code="ConditionalCheckFailedException", http_status_code=400)
        with pytest.raises(TaskNotFound):
            stubbed.complete_task(ALICE, task_id)
        stub.assert_no_pending_responses()


def test_a_malformed_id_is_refused_without_a_request(dynamodb: Any, stubbed: DynamoDbTasksStore) -> None:
    with Stubber(dynamodb) as stub:  # no response queued: any request would fail the test
        for task_id in ("../x", "0" * 28 + "#", "ABCDEF" + "0" * 22):
            with pytest.raises(TaskNotFound):
                stubbed.complete_task(ALICE, task_id)
        stub.assert_no_pending_responses()


def test_throttling_is_unavailable_not_an_error(dynamodb: Any, stubbed: DynamoDbTasksStore) -> None:
    with Stubber(dynamodb) as stub:
        stub.add_client_error("query", service_error_code="ThrottlingException", http_status_code=400)
        with pytest.raises(StoreUnavailable):
            stubbed.list_tasks(ALICE)
        stub.add_client_error("update_item", service_error_code="ProvisionedThroughputExceededException", http_status_code=400)
        with pytest.raises(StoreUnavailable):
            stubbed.complete_task(ALICE, "0" * 28)
