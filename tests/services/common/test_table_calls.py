"""`TableCalls`, the session ledger's and the connections registry's one way to call their tables, with a real
boto3 client against the local DynamoDB-compatible server (and a closed port): a failed condition comes back as
botocore's error, anything else as the caller's "unavailable" exception naming only the code, and no more calls
are in flight than the concurrency allows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bench.procs import free_port
from local.dynamodb import BINDING_TABLE, LocalDynamoDB
from services.common.connections import registry_client
from services.common.table_calls import CONDITION_FAILED, TableCalls
from services.session_binding.ledger import SessionLedger, StoreUnavailable
from tests.services.conftest import new_session_uri
from tests.support.dynamodb import table, use_local_dynamodb


class Unavailable(Exception):
    pass


@pytest.fixture
def sessions(local_dynamodb: LocalDynamoDB, fresh_table_name: Callable[[str], str]) -> Iterator[str]:
    with table(local_dynamodb, fresh_table_name("sessions"), BINDING_TABLE) as name:
        yield name


def test_a_failed_condition_is_botocores_error_and_the_write_did_not_happen(local_dynamodb: LocalDynamoDB, sessions: str) -> None:
    client = local_dynamodb.client()
    calls = TableCalls(sessions, lambda: client, concurrency=2, unavailable=Unavailable)
    item = {"session": {"S": "s1"}, "status": {"S": "pending"}}

    async def scenario() -> None:
        await calls("put_item", Item=item, ConditionExpression="attribute_not_exists(#s)", ExpressionAttributeNames={"#s": "session"})
        with pytest.raises(ClientError) as raised:
            await calls(
                "put_item",
                Item={**item, "status": {"S": "completed"}},
                ConditionExpression="attribute_not_exists(#s)",
                ExpressionAttributeNames={"#s": "session"},
            )
        assert raised.value.response["Error"]["Code"] == CONDITION_FAILED
        stored = await calls("get_item", Key={"session": {"S": "s1"}}, ConsistentRead=True)
        assert stored["Item"]["status"] == {"S": "pending"}

    asyncio.run(scenario())


@pytest.mark.parametrize(("where", "code"), [("no such table", "ResourceNotFoundException"), ("closed port", "EndpointConnectionError")])
def test_the_ledger_reports_a_failing_store_by_code_alone(
    where: str, code: str, local_dynamodb: LocalDynamoDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the ledger shared `TableCalls`, an error other than throttling came chained to botocore's message."""
    use_local_dynamodb(monkeypatch, local_dynamodb)
    if where == "closed port":
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{free_port()}")
    client = registry_client(local_dynamodb.region, max_attempts=1)
    ledger = SessionLedger("sessions-absent", lambda: client, lease_s=5)
    session_uri = new_session_uri()
    with pytest.raises(StoreUnavailable) as raised:
        asyncio.run(ledger.get(session_uri))
    assert str(raised.value) == code
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert session_uri not in repr(raised.value)


class _SlowClient:
    """Counts the calls in flight: each holds its worker thread 50 ms."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0

    def get_item(self, **_: Any) -> dict[str, Any]:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.05)
        with self.lock:
            self.now -= 1
        return {}


def test_no_more_calls_are_in_flight_than_the_concurrency() -> None:
    client = _SlowClient()
    calls = TableCalls("t", lambda: client, concurrency=3, unavailable=Unavailable)

    async def scenario() -> None:
        await asyncio.gather(*(calls("get_item", Key={}) for _ in range(12)))

    asyncio.run(scenario())
    assert client.most == 3
