"""The local DynamoDB (`local/dynamodb.py`): dynalite behind the front, driven by real boto3 clients.

Most tests share the session's server (`local_dynamodb`) and keep apart by table; the ones about
starting and stopping run servers of their own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import local.dynamodb
from local.dynamodb import BINDING_TABLE, NOTES_TABLE, LocalDynamoDB, LocalDynamoDBError, TableShape, create_table
from tests.support.dynamodb import table

ROOT = Path(__file__).resolve().parents[2]
COUNTER = {"sub": {"S": "alice"}, "id": {"S": "#count"}}


@pytest.fixture
def notes(local_dynamodb: LocalDynamoDB, fresh_table_name: Callable[[str], str]) -> Iterator[str]:
    with table(local_dynamodb, fresh_table_name("notes"), NOTES_TABLE) as name:
        yield name


@pytest.fixture
def db(local_dynamodb: LocalDynamoDB) -> Any:
    return local_dynamodb.client()


def _note(sub: str, note_id: str) -> dict[str, Any]:
    return {"sub": {"S": sub}, "id": {"S": note_id}}


def _exists(db: Any, name: str, key: dict[str, Any]) -> bool:
    return "Item" in db.get_item(TableName=name, Key=key, ConsistentRead=True)


def _count_up(name: str, limit: int) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": name,
            "Key": COUNTER,
            "UpdateExpression": "ADD #count :one",
            "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
            "ExpressionAttributeNames": {"#count": "count"},
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(limit)}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


# ------------------------------------------------------------------------------ tables


def test_tables_are_created_active_with_their_shape(local_dynamodb: LocalDynamoDB, db: Any, fresh_table_name: Callable[[str], str]) -> None:
    for shape in (NOTES_TABLE, BINDING_TABLE):
        with table(local_dynamodb, fresh_table_name("shape"), shape) as name:
            described = db.describe_table(TableName=name)["Table"]
            assert described["TableStatus"] == "ACTIVE"
            assert described["KeySchema"] == shape.key_schema()
            assert sorted(described["AttributeDefinitions"], key=str) == sorted(shape.attribute_definitions(), key=str)
            assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_the_shapes_match_the_constructs_key_names() -> None:
    assert NOTES_TABLE.key_schema() == [{"AttributeName": "sub", "KeyType": "HASH"}, {"AttributeName": "id", "KeyType": "RANGE"}]
    assert BINDING_TABLE.key_schema() == [{"AttributeName": "session", "KeyType": "HASH"}]
    assert BINDING_TABLE.ttl_attribute == "expires_at"


def test_ttl_is_skipped_where_dynalite_has_no_such_operation(
    local_dynamodb: LocalDynamoDB, db: Any, fresh_table_name: Callable[[str], str]
) -> None:
    with table(local_dynamodb, fresh_table_name("ttl"), TableShape(partition_key=("k", "S"), ttl_attribute="expires_at")) as name:
        assert db.describe_time_to_live(TableName=name)["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"


def test_other_ttl_errors_are_not_swallowed() -> None:
    class Client:
        def create_table(self, **_: Any) -> None:
            pass

        def describe_table(self, **_: Any) -> dict[str, Any]:
            return {"Table": {"TableStatus": "ACTIVE"}}

        def update_time_to_live(self, **_: Any) -> None:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "no"}}, "UpdateTimeToLive")

    with pytest.raises(ClientError, match="ValidationException"):
        create_table(Client(), "ledger", BINDING_TABLE)


def test_every_region_sees_the_same_tables(local_dynamodb: LocalDynamoDB, notes: str) -> None:
    for region in ("eu-west-1", "ap-southeast-2"):
        pages = local_dynamodb.client(region).get_paginator("list_tables").paginate()
        assert notes in [name for page in pages for name in page["TableNames"]]


# ------------------------------------------------------------------------------ transactions (served by the front)


def test_a_transaction_writes_every_item(db: Any, notes: str) -> None:
    db.transact_write_items(TransactItems=[_count_up(notes, 2), {"Put": {"TableName": notes, "Item": _note("alice", "n1")}}])
    assert db.get_item(TableName=notes, Key=COUNTER)["Item"]["count"] == {"N": "1"}
    assert _exists(db, notes, _note("alice", "n1"))


def test_a_failed_condition_cancels_the_whole_transaction_with_reasons(db: Any, notes: str) -> None:
    db.put_item(TableName=notes, Item={**COUNTER, "count": {"N": "2"}})
    db.put_item(TableName=notes, Item={**_note("alice", "old"), "text": {"S": "before"}})
    items = [
        {"Put": {"TableName": notes, "Item": {**_note("alice", "old"), "text": {"S": "after"}}}},  # applied first, then undone
        {"Delete": {"TableName": notes, "Key": _note("alice", "gone")}},
        _count_up(notes, 2),  # fails: the count is at the limit
        {
            "ConditionCheck": {  # fails too: every condition is reported, not only the first
                "TableName": notes,
                "Key": _note("bob", "none"),
                "ConditionExpression": "attribute_exists(#id)",
                "ExpressionAttributeNames": {"#id": "id"},
            }
        },
    ]
    with pytest.raises(ClientError) as caught:
        db.transact_write_items(TransactItems=items)
    error = caught.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    assert "[None, None, ConditionalCheckFailed, ConditionalCheckFailed]" in error["Error"]["Message"]
    reasons = error["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "None", "ConditionalCheckFailed", "ConditionalCheckFailed"]
    assert reasons[2]["Item"]["count"] == {"N": "2"}  # ReturnValuesOnConditionCheckFailure=ALL_OLD
    assert "Item" not in reasons[3]
    assert db.get_item(TableName=notes, Key=_note("alice", "old"))["Item"]["text"] == {"S": "before"}
    assert db.get_item(TableName=notes, Key=COUNTER)["Item"]["count"] == {"N": "2"}
    assert not _exists(db, notes, _note("bob", "none"))  # the condition check wrote nothing


def test_an_item_a_cancelled_transaction_created_is_removed_again(db: Any, notes: str) -> None:
    db.put_item(TableName=notes, Item={**COUNTER, "count": {"N": "5"}})
    with pytest.raises(ClientError, match="TransactionCanceledException"):
        db.transact_write_items(TransactItems=[{"Put": {"TableName": notes, "Item": _note("alice", "new")}}, _count_up(notes, 5)])
    assert not _exists(db, notes, _note("alice", "new"))


def test_a_deleted_item_comes_back_when_the_transaction_is_cancelled(db: Any, notes: str) -> None:
    db.put_item(TableName=notes, Item={**_note("alice", "keep"), "text": {"S": "kept"}})
    db.put_item(TableName=notes, Item={**COUNTER, "count": {"N": "1"}})
    with pytest.raises(ClientError, match="TransactionCanceledException"):
        db.transact_write_items(TransactItems=[{"Delete": {"TableName": notes, "Key": _note("alice", "keep")}}, _count_up(notes, 1)])
    assert db.get_item(TableName=notes, Key=_note("alice", "keep"))["Item"]["text"] == {"S": "kept"}


def test_two_actions_on_one_item_are_refused(db: Any, notes: str) -> None:
    with pytest.raises(ClientError) as caught:
        db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": notes, "Item": _note("alice", "x")}},
                {"Delete": {"TableName": notes, "Key": _note("alice", "x")}},
            ]
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert not _exists(db, notes, _note("alice", "x"))


def test_a_missing_table_is_resource_not_found(db: Any, notes: str) -> None:
    with pytest.raises(ClientError) as caught:
        db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": notes, "Item": _note("alice", "x")}},
                {"Put": {"TableName": "no-such-table", "Item": _note("alice", "x")}},
            ]
        )
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert not _exists(db, notes, _note("alice", "x"))


def test_a_key_that_does_not_match_the_schema_is_refused(db: Any, notes: str) -> None:
    with pytest.raises(ClientError, match="ValidationException"):
        db.transact_write_items(TransactItems=[{"Put": {"TableName": notes, "Item": {"sub": {"S": "alice"}}}}])


def test_transact_get_reads_each_item(db: Any, notes: str) -> None:
    db.put_item(TableName=notes, Item={**_note("alice", "a"), "text": {"S": "hello"}})
    answer = db.transact_get_items(
        TransactItems=[{"Get": {"TableName": notes, "Key": _note("alice", "a")}}, {"Get": {"TableName": notes, "Key": _note("bob", "b")}}]
    )
    assert answer["Responses"] == [{"Item": {**_note("alice", "a"), "text": {"S": "hello"}}}, {}]


def test_forwarded_errors_keep_dynamodbs_codes(db: Any, notes: str) -> None:
    with pytest.raises(ClientError) as caught:
        db.put_item(
            TableName=notes, Item=_note("alice", "x"), ConditionExpression="attribute_exists(#id)", ExpressionAttributeNames={"#id": "id"}
        )
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_calls_reuse_one_kept_alive_connection_to_dynalite_and_never_a_stale_one() -> None:
    with LocalDynamoDB() as server:  # a server of its own: only this test's calls go through its front
        assert server._front is not None
        pool = server._front.connections
        client = server.client()
        client.list_tables()
        ((_, first),) = pool._idle
        for _ in range(5):
            assert client.list_tables()["TableNames"] == []
        assert [connection for _, connection in pool._idle] == [first]  # the same connection each time

        pool.IDLE_S = 0.0  # every idle connection is now older than dynalite may keep it open
        assert client.list_tables()["TableNames"] == []
        ((_, second),) = pool._idle
        assert second is not first and first.sock is None  # the stale one was closed, not used
    assert pool._idle == []  # stop closes the idle ones


# ------------------------------------------------------------------------------ starting and stopping


def test_a_given_port_is_served_and_released_at_stop() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with LocalDynamoDB(port=port) as server:
        assert server.endpoint == f"http://127.0.0.1:{port}"
        assert server.client().list_tables()["TableNames"] == []  # a server of its own: no tables of the session's
    assert not server.running
    server.stop()  # twice is fine
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with pytest.raises(LocalDynamoDBError, match=f"port {port} \\(dynamodb\\) on 127.0.0.1 is in use"):
            LocalDynamoDB(port=port).start()


def test_without_dynalite_installed_the_error_says_make_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(local.dynamodb, "DYNALITE_CLI", tmp_path / "node_modules" / "dynalite" / "cli.js")
    monkeypatch.setattr(local.dynamodb, "REPO_ROOT", tmp_path)
    with pytest.raises(LocalDynamoDBError, match="run `make install`"):
        LocalDynamoDB().start()


def test_without_node_the_error_says_so() -> None:
    with pytest.raises(LocalDynamoDBError, match="cannot run '/nonexistent/node'"):
        LocalDynamoDB(node="/nonexistent/node").start()


def test_a_child_that_exits_is_reported_with_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho 'dynalite: something broke' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(LocalDynamoDBError, match=r"(?s)exited with code 3.*something broke"):
        LocalDynamoDB(node=str(fake)).start()


def test_a_child_that_never_answers_times_out_with_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho 'listening, or so it says'\nexec sleep 30\n")
    fake.chmod(0o755)
    server = LocalDynamoDB(node=str(fake), start_timeout_s=0.5)
    with pytest.raises(LocalDynamoDBError, match=r"(?s)did not answer .* within 0.5 s.*or so it says"):
        server.start()
    assert not server.running


def test_a_taken_dynalite_port_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([int(taken.getsockname()[1])])
        real = local.dynamodb._free_port
        monkeypatch.setattr(local.dynamodb, "_free_port", lambda host: next(ports, None) or real(host))
        with LocalDynamoDB() as server:
            assert server.client().list_tables()["TableNames"] == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_a_killed_parent_leaves_no_dynalite_running() -> None:
    script = "import time\nfrom local.dynamodb import LocalDynamoDB\nserver = LocalDynamoDB().start()\nprint(server._process.pid, flush=True)\ntime.sleep(60)\n"
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return  # gone
        if state == "Z":
            return  # ended, not yet reaped by whoever adopted it
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            raise AssertionError(f"dynalite ({child}) outlived its parent")
        time.sleep(0.05)
