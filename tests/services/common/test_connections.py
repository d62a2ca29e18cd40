"""The connections registry against a real DynamoDB-compatible server (`local/dynamodb.py`): a
disconnect is never undone by a use or by a consent that started before it, people and providers
never mix, and a failing store says so without naming anyone."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from bench.procs import free_port
from local.dynamodb import CONNECTIONS_TABLE, LocalDynamoDB
from local.serving import JsonHandler, LoopbackServer
from services.common.connections import (
    MAX_SCOPES,
    Connected,
    Connection,
    ConnectionsRegistry,
    RegistryUnavailable,
    Status,
    registry_client,
)
from tests.support.dynamodb import table, use_local_dynamodb

T = TypeVar("T")
ALICE, BOB = "issuer\nalice-sub", "issuer\nbob-sub"
NOTES = ("demo-api/notes.read", "demo-api/notes.write")
T0 = 1_800_000_000


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await scenario()

    return asyncio.run(main())


@pytest.fixture
def table_name(local_dynamodb: LocalDynamoDB, fresh_table_name: Callable[[str], str]) -> Iterator[str]:
    with table(local_dynamodb, fresh_table_name("connections"), CONNECTIONS_TABLE) as name:
        yield name


@pytest.fixture
def registry(local_dynamodb: LocalDynamoDB, table_name: str) -> ConnectionsRegistry:
    client = local_dynamodb.client()
    return ConnectionsRegistry(table_name, lambda: client, concurrency=8)


@pytest.fixture(scope="module")
def shared_registry(local_dynamodb: LocalDynamoDB) -> Iterator[ConnectionsRegistry]:
    """One table for the tests that write nothing, or only under their own keys (a table takes ~0.4 s)."""
    with table(local_dynamodb, f"connections-shared-{uuid.uuid4().hex[:12]}", CONNECTIONS_TABLE) as name:
        client = local_dynamodb.client()
        yield ConnectionsRegistry(name, lambda: client)


# ---------------------------------------------------------------------------------------- the life of one account


def test_a_consent_is_listed_with_its_scopes_and_date(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[Connected, list[Connection]]:
        outcome = await registry.record_connected(ALICE, "notes", ["demo-api/notes.write", *NOTES], now=T0 + 5, flow_generation=0)
        return outcome, await registry.list(ALICE)

    outcome, listed = run(scenario)
    assert outcome is Connected.RECORDED
    assert listed == [
        Connection(
            provider="notes",
            status=Status.CONNECTED,
            scopes=NOTES,  # deduplicated, sorted
            connected_at=T0 + 5,
            last_used_at=None,
            disconnected_at=None,
            generation=1,
        )
    ]
    assert listed[0].usable


def test_a_use_records_its_date_and_keeps_the_consent(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[bool, Connection | None]:
        await registry.record_connected(ALICE, "notes", NOTES[:1], now=T0, flow_generation=0)
        allowed = await registry.record_used(ALICE, "notes", NOTES, now=T0 + 60)
        return allowed, await registry.get(ALICE, "notes")

    allowed, connection = run(scenario)
    assert allowed
    assert connection is not None
    assert (connection.connected_at, connection.last_used_at, connection.generation) == (T0, T0 + 60, 1)
    assert connection.scopes == NOTES  # the vault answered for both: both are granted


def test_a_grant_older_than_the_registry_is_recorded_when_first_used(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[bool, Connection | None]:
        return await registry.record_used(ALICE, "tasks", [], now=T0), await registry.get(ALICE, "tasks")

    allowed, connection = run(scenario)
    assert allowed
    assert connection == Connection("tasks", Status.CONNECTED, (), connected_at=T0, last_used_at=T0, disconnected_at=None, generation=1)


def test_a_disconnected_account_is_never_used_again(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[Connection, list[bool], Connection | None, bool]:
        await registry.record_connected(ALICE, "notes", NOTES, now=T0, flow_generation=0)
        await registry.record_used(ALICE, "notes", NOTES, now=T0 + 1)
        disconnected = await registry.record_disconnected(ALICE, "notes", now=T0 + 2)
        uses = [await registry.record_used(ALICE, "notes", NOTES, now=T0 + 3 + i) for i in range(3)]
        return disconnected, uses, await registry.get(ALICE, "notes"), await registry.is_disconnected(ALICE, "notes")

    disconnected, uses, after, is_disconnected = run(scenario)
    assert disconnected.status is Status.DISCONNECTED and not disconnected.usable
    assert (disconnected.disconnected_at, disconnected.generation) == (T0 + 2, 2)
    assert uses == [False, False, False]
    assert after == disconnected  # not reconnected, not even touched (last_used_at stays)
    assert after is not None and after.last_used_at == T0 + 1
    assert is_disconnected


def test_a_disconnect_without_a_record_is_recorded_so_an_older_grant_is_not_used(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[Connection, bool, bool]:
        disconnected = await registry.record_disconnected(ALICE, "github", now=T0)
        return (
            disconnected,
            await registry.record_used(ALICE, "github", ["repo"], now=T0 + 1),
            await registry.is_disconnected(ALICE, "github"),
        )

    disconnected, used, is_disconnected = run(scenario)
    assert disconnected == Connection("github", Status.DISCONNECTED, (), None, None, disconnected_at=T0, generation=1)
    assert not used
    assert is_disconnected


def test_a_disconnect_is_idempotent_its_date_never_moves_back_and_its_generation_always_does(registry: ConnectionsRegistry) -> None:
    async def scenario() -> list[Connection]:
        await registry.record_connected(ALICE, "notes", NOTES, now=T0, flow_generation=0)
        return [
            await registry.record_disconnected(ALICE, "notes", now=T0 + 10),
            await registry.record_disconnected(ALICE, "notes", now=T0 + 20),
            await registry.record_disconnected(ALICE, "notes", now=T0 + 15),  # a task whose clock is behind
        ]

    first, again, behind = run(scenario)
    assert [c.status for c in (first, again, behind)] == [Status.DISCONNECTED] * 3
    assert (first.disconnected_at, again.disconnected_at, behind.disconnected_at) == (T0 + 10, T0 + 20, T0 + 20)
    # Each disconnect moves the generation on, the one from a clock behind too: every consent flow issued
    # before it is stale, whatever the clocks say; only the date stays where it was.
    assert (first.generation, again.generation, behind.generation) == (2, 3, 4)


async def _flow_generation(registry: ConnectionsRegistry, user: str, provider: str) -> int:
    """What the agent carries in a flow it issues now: the record's generation, 0 without a record."""
    current = await registry.get(user, provider)
    return current.generation if current is not None else 0


def test_a_consent_started_before_the_disconnect_does_not_undo_it(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[int, list[Connected], Connection | None, int, Connected, Connection | None]:
        await registry.record_connected(ALICE, "notes", NOTES, now=T0, flow_generation=0)
        issued_connected = await _flow_generation(registry, ALICE, "notes")
        await registry.record_disconnected(ALICE, "notes", now=T0 + 100)
        stale = [
            # issued while connected (completed in the disconnect's second, then later); issued before the
            # first consent; a generation nobody read. No clock is compared.
            await registry.record_connected(ALICE, "notes", NOTES, now=now, flow_generation=generation)
            for generation, now in ((issued_connected, T0 + 100), (issued_connected, T0 + 200), (0, T0 + 200), (3, T0 + 200))
        ]
        after_stale = await registry.get(ALICE, "notes")
        issued_disconnected = await _flow_generation(registry, ALICE, "notes")
        fresh = await registry.record_connected(ALICE, "notes", NOTES[:1], now=T0 + 100, flow_generation=issued_disconnected)
        return issued_connected, stale, after_stale, issued_disconnected, fresh, await registry.get(ALICE, "notes")

    issued_connected, stale, after_stale, issued_disconnected, fresh, after_fresh = run(scenario)
    assert (issued_connected, issued_disconnected) == (1, 2)
    assert stale == [Connected.STALE_FLOW] * 4
    assert after_stale == Connection("notes", Status.DISCONNECTED, NOTES, T0, None, disconnected_at=T0 + 100, generation=2)  # untouched
    # disconnected and reconnected within one second: the flow was issued after the disconnect, so it counts
    assert fresh is Connected.RECORDED
    assert after_fresh == Connection("notes", Status.CONNECTED, NOTES[:1], T0 + 100, None, disconnected_at=None, generation=3)


def test_a_flow_issued_without_a_record_is_stale_once_a_disconnect_created_one(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[int, Connected, Connection | None, Connected, Connection | None]:
        issued = await _flow_generation(registry, ALICE, "github")
        await registry.record_disconnected(ALICE, "github", now=T0)
        stale = await registry.record_connected(ALICE, "github", ["repo"], now=T0 + 1, flow_generation=issued)
        after_stale = await registry.get(ALICE, "github")
        fresh = await registry.record_connected(
            ALICE, "github", ["repo"], now=T0 + 2, flow_generation=await _flow_generation(registry, ALICE, "github")
        )
        return issued, stale, after_stale, fresh, await registry.get(ALICE, "github")

    issued, stale, after_stale, fresh, after_fresh = run(scenario)
    assert issued == 0
    assert stale is Connected.STALE_FLOW
    assert after_stale == Connection("github", Status.DISCONNECTED, (), None, None, disconnected_at=T0, generation=1)
    assert fresh is Connected.RECORDED
    assert after_fresh == Connection("github", Status.CONNECTED, ("repo",), T0 + 2, None, disconnected_at=None, generation=2)


def test_a_flow_issued_while_disconnected_reconnects_if_nothing_happened_since(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[int, bool, Connected, Connection | None]:
        await registry.record_disconnected(ALICE, "notes", now=T0)  # generation 1
        await registry.record_connected(ALICE, "notes", NOTES, now=T0 + 1, flow_generation=1)  # 2
        await registry.record_disconnected(ALICE, "notes", now=T0 + 2)  # 3
        issued = await _flow_generation(registry, ALICE, "notes")
        refused_use = await registry.record_used(ALICE, "notes", NOTES, now=T0 + 2)  # refused: changes nothing
        outcome = await registry.record_connected(ALICE, "notes", NOTES[:1], now=T0 + 2, flow_generation=issued)
        return issued, refused_use, outcome, await registry.get(ALICE, "notes")

    issued, refused_use, outcome, after = run(scenario)
    assert issued == 3
    assert not refused_use
    assert outcome is Connected.RECORDED
    assert after == Connection("notes", Status.CONNECTED, NOTES[:1], T0 + 2, None, disconnected_at=None, generation=4)


def test_a_consent_to_a_connected_account_is_recorded_whatever_its_flow_generation(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[list[Connected], Connection | None]:
        outcomes = [
            # two flows issued without a record, completed one after the other; one from an unknown generation
            await registry.record_connected(ALICE, "notes", NOTES, now=T0, flow_generation=0),
            await registry.record_connected(ALICE, "notes", NOTES[:1], now=T0 + 1, flow_generation=0),
            await registry.record_connected(ALICE, "notes", NOTES, now=T0 + 2, flow_generation=7),
        ]
        return outcomes, await registry.get(ALICE, "notes")

    outcomes, after = run(scenario)
    assert outcomes == [Connected.RECORDED] * 3
    assert after == Connection("notes", Status.CONNECTED, NOTES, T0 + 2, None, disconnected_at=None, generation=3)


def test_a_consent_without_scopes_clears_the_old_ones(registry: ConnectionsRegistry) -> None:
    async def scenario() -> Connection | None:
        await registry.record_connected(ALICE, "notes", NOTES, now=T0, flow_generation=0)
        await registry.record_connected(ALICE, "notes", (), now=T0 + 1, flow_generation=1)
        return await registry.get(ALICE, "notes")

    connection = run(scenario)
    assert connection is not None and connection.scopes == () and connection.generation == 2


# ---------------------------------------------------------------------------------------- people and providers apart


def test_two_people_never_see_each_others_records(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[list[Connection], list[Connection], Connection | None, bool]:
        await registry.record_connected(ALICE, "notes", NOTES, now=T0, flow_generation=0)
        await registry.record_disconnected(BOB, "notes", now=T0 + 1)
        return (
            await registry.list(ALICE),
            await registry.list(BOB),
            await registry.get(BOB + "x", "notes"),  # a key that merely begins like another's
            await registry.record_used(ALICE, "notes", NOTES, now=T0 + 2),
        )

    alice, bob, other, alice_used = run(scenario)
    assert [(c.provider, c.status) for c in alice] == [("notes", Status.CONNECTED)]
    assert [(c.provider, c.status) for c in bob] == [("notes", Status.DISCONNECTED)]
    assert other is None
    assert alice_used  # Bob's disconnect is his alone


def test_two_providers_of_one_person_are_separate(registry: ConnectionsRegistry) -> None:
    async def scenario() -> tuple[list[Connection], bool, bool]:
        await registry.record_connected(ALICE, "notes", NOTES, now=T0, flow_generation=0)
        await registry.record_connected(ALICE, "github", ["repo", "read:user"], now=T0, flow_generation=0)
        await registry.record_used(ALICE, "tasks", ["tasks.read"], now=T0)
        await registry.record_disconnected(ALICE, "github", now=T0 + 1)
        notes_used = await registry.record_used(ALICE, "notes", NOTES, now=T0 + 2)
        github_used = await registry.record_used(ALICE, "github", ["repo"], now=T0 + 2)
        return await registry.list(ALICE), notes_used, github_used

    listed, notes_used, github_used = run(scenario)
    assert [(c.provider, c.usable, c.scopes) for c in listed] == [
        ("github", False, ("read:user", "repo")),
        ("notes", True, NOTES),
        ("tasks", True, ("tasks.read",)),
    ]
    assert notes_used and not github_used


# ---------------------------------------------------------------------------------------- races


def test_uses_and_a_stale_consent_racing_a_disconnect_never_end_connected(registry: ConnectionsRegistry) -> None:
    """Many rounds of uses, consents whose flow was issued before the disconnect, and the disconnect,
    all at once (and in the same second: no clock decides): the record always ends disconnected, and
    no use or consent that began after the disconnect was acknowledged is allowed."""

    async def one_round(round_no: int) -> tuple[Connection | None, list[bool], list[Connected]]:
        user, acknowledged = f"racer-{round_no}", False
        uses_after: list[bool] = []
        consents_after: list[Connected] = []
        if round_no % 2:  # odd rounds start connected, even rounds from no record at all
            await registry.record_connected(user, "notes", NOTES, now=T0, flow_generation=0)
        issued = await _flow_generation(registry, user, "notes")  # the stale flows' generation: 1 or 0

        async def use() -> None:
            for _ in range(4):
                began_after = acknowledged
                allowed = await registry.record_used(user, "notes", NOTES, now=T0 + 5)
                if began_after:
                    uses_after.append(allowed)

        async def stale_consent() -> None:
            for _ in range(3):
                began_after = acknowledged
                outcome = await registry.record_connected(user, "notes", NOTES, now=T0 + 5, flow_generation=issued)
                if began_after:
                    consents_after.append(outcome)

        async def disconnect() -> None:
            nonlocal acknowledged
            await registry.record_disconnected(user, "notes", now=T0 + 5)
            acknowledged = True

        await asyncio.gather(use(), stale_consent(), use(), disconnect(), use(), stale_consent(), use())
        return await registry.get(user, "notes"), uses_after, consents_after

    async def scenario() -> list[tuple[Connection | None, list[bool], list[Connected]]]:
        return [await one_round(n) for n in range(30)]

    rounds = run(scenario)
    assert all(final is not None and final.status is Status.DISCONNECTED for final, _, _ in rounds)
    uses_after = [allowed for _, uses, _ in rounds for allowed in uses]
    consents_after = [outcome for _, _, consents in rounds for outcome in consents]
    assert uses_after, "no use began after a disconnect: the race was not exercised"
    assert consents_after, "no stale consent began after a disconnect: the race was not exercised"
    assert not any(uses_after)
    assert set(consents_after) == {Connected.STALE_FLOW}


# ---------------------------------------------------------------------------------------- a failing store


class _Throttling(JsonHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_body(
            400,
            b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}',
            "application/x-amz-json-1.0",
        )


@pytest.fixture
def throttling_endpoint() -> Iterator[str]:
    server = LoopbackServer(_Throttling, name="throttling-dynamodb")
    server.start()
    yield server.base_url
    server.stop()


SECRET_USER, SECRET_PROVIDER = "issuer\nperson-who-must-not-be-named", "hidden-provider"


def _every_call(registry: ConnectionsRegistry) -> list[Callable[[], Awaitable[Any]]]:
    return [
        lambda: registry.record_connected(SECRET_USER, SECRET_PROVIDER, ["scope.secret"], now=T0, flow_generation=0),
        lambda: registry.record_used(SECRET_USER, SECRET_PROVIDER, ["scope.secret"], now=T0),
        lambda: registry.record_disconnected(SECRET_USER, SECRET_PROVIDER, now=T0),
        lambda: registry.get(SECRET_USER, SECRET_PROVIDER),
        lambda: registry.list(SECRET_USER),
        lambda: registry.is_disconnected(SECRET_USER, SECRET_PROVIDER),
    ]


def _assert_unavailable_without_names(registry: ConnectionsRegistry, code: str) -> None:
    for call in _every_call(registry):
        with pytest.raises(RegistryUnavailable) as raised:
            run(call)
        exc = raised.value
        assert str(exc) == code
        assert exc.__cause__ is None and exc.__suppress_context__  # no chained botocore message in a traceback
        for name in ("person-who-must-not-be-named", SECRET_PROVIDER, "scope.secret"):
            assert name not in repr(exc)


@pytest.mark.parametrize("where", ["closed port", "throttling", "no such table"])
def test_a_failing_store_is_unavailable_and_names_nobody(
    where: str, monkeypatch: pytest.MonkeyPatch, local_dynamodb: LocalDynamoDB, throttling_endpoint: str
) -> None:
    use_local_dynamodb(monkeypatch, local_dynamodb)  # credentials and the endpoint variable, as in the local stack
    endpoints = {
        "closed port": f"http://127.0.0.1:{free_port()}",
        "throttling": throttling_endpoint,
        "no such table": local_dynamodb.endpoint,
    }
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoints[where])
    client = registry_client(local_dynamodb.region, max_attempts=1)
    registry = ConnectionsRegistry("connections-absent", lambda: client)
    codes = {"closed port": "EndpointConnectionError", "throttling": "ThrottlingException", "no such table": "ResourceNotFoundException"}
    _assert_unavailable_without_names(registry, codes[where])


def test_the_production_client_reaches_the_table_through_the_endpoint_variable(
    monkeypatch: pytest.MonkeyPatch, local_dynamodb: LocalDynamoDB, table_name: str
) -> None:
    use_local_dynamodb(monkeypatch, local_dynamodb)
    client = registry_client(local_dynamodb.region)
    registry = ConnectionsRegistry(table_name, lambda: client)

    async def scenario() -> list[Connection]:
        await registry.record_connected(ALICE, "notes", NOTES, now=T0, flow_generation=0)
        return await registry.list(ALICE)

    assert [c.provider for c in run(scenario)] == ["notes"]


# ---------------------------------------------------------------------------------------- bad input


BAD_INPUT: dict[str, tuple[dict[str, Any], str]] = {
    "empty user": ({"user": ""}, "user must be"),
    "long user": ({"user": "u" * 513}, "user must be"),
    "lone surrogate in user": ({"user": "a\ud800"}, "valid Unicode"),
    "user not a string": ({"user": 42}, "user must be"),
    "uppercase provider": ({"provider": "Notes"}, "provider must be"),
    "provider with a digit first": ({"provider": "1notes"}, "provider must be"),
    "provider with an underscore": ({"provider": "my_notes"}, "provider must be"),
    "long provider": ({"provider": "p" * 21}, "provider must be"),
    "empty provider": ({"provider": ""}, "provider must be"),
    "scopes as one string": ({"scopes": "notes.read notes.write"}, "not one string"),
    "scope with a space": ({"scopes": ["notes.read notes.write"]}, "scope 1 is not"),
    "scope with a quote": ({"scopes": ["ok", 'a"b']}, "scope 2 is not"),
    "scope with a backslash": ({"scopes": ["a\\b"]}, "scope 1 is not"),
    "empty scope": ({"scopes": [""]}, "scope 1 is not"),
    "non-ASCII scope": ({"scopes": ["notés"]}, "scope 1 is not"),
    "long scope": ({"scopes": ["s" * 129]}, "scope 1 is not"),
    "too many scopes": ({"scopes": [f"s{i}" for i in range(MAX_SCOPES + 1)]}, f"at most {MAX_SCOPES} scopes"),
    "negative time": ({"now": -1}, "now must be"),
    "time not a number": ({"now": float("nan")}, "now must be"),
    "time as a boolean": ({"now": True}, "now must be"),
    "negative flow generation": ({"flow_generation": -1}, "flow_generation must be"),
    "flow generation as a boolean": ({"flow_generation": True}, "flow_generation must be"),
    "flow generation not an integer": ({"flow_generation": 1.0}, "flow_generation must be"),
    "flow generation as a string": ({"flow_generation": "3"}, "flow_generation must be"),
}


def _calls_taking(registry: ConnectionsRegistry, values: dict[str, Any], changed: set[str]) -> list[Callable[[], Awaitable[Any]]]:
    """Every registry call that takes one of the `changed` arguments, with `values`."""
    v = values
    calls: list[tuple[set[str], Callable[[], Awaitable[Any]]]] = [
        (
            {"user", "provider", "scopes", "now", "flow_generation"},
            lambda: registry.record_connected(v["user"], v["provider"], v["scopes"], now=v["now"], flow_generation=v["flow_generation"]),
        ),
        ({"user", "provider", "scopes", "now"}, lambda: registry.record_used(v["user"], v["provider"], v["scopes"], now=v["now"])),
        ({"user", "provider", "now"}, lambda: registry.record_disconnected(v["user"], v["provider"], now=v["now"])),
        ({"user", "provider"}, lambda: registry.get(v["user"], v["provider"])),
        ({"user", "provider"}, lambda: registry.is_disconnected(v["user"], v["provider"])),
        ({"user"}, lambda: registry.list(v["user"])),
    ]
    return [call for takes, call in calls if takes & changed]


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_refused_before_any_call(case: str, shared_registry: ConnectionsRegistry) -> None:
    registry = shared_registry
    changes, message = BAD_INPUT[case]
    values: dict[str, Any] = {"user": ALICE, "provider": "notes", "scopes": NOTES, "now": T0, "flow_generation": 0} | changes
    calls = _calls_taking(registry, values, set(changes))
    assert calls
    for call in calls:
        with pytest.raises(ValueError, match=re.escape(message)) as raised:
            run(call)
        assert "u" * 513 not in str(raised.value) and "notés" not in str(raised.value)  # the value itself is never echoed
    assert run(lambda: registry.list(ALICE)) == []  # nothing was written, by any call


def test_the_limits_themselves_are_accepted(shared_registry: ConnectionsRegistry) -> None:
    registry = shared_registry
    user, provider = "v" * 512, "p" + "-9" * 9 + "z"
    scopes = [f"{i:02d}" + "s" * 126 for i in range(MAX_SCOPES)]

    async def scenario() -> Connection | None:
        await registry.record_connected(user, provider, scopes, now=T0, flow_generation=0)
        return await registry.get(user, provider)

    connection = run(scenario)
    assert connection is not None and connection.provider == provider and len(connection.scopes) == MAX_SCOPES
