"""The sessions ledger on its own, against a real DynamoDB-compatible server: one AgentCore call per
session whatever the browsers and tasks do, and a cancelled session never claimed again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from local.dynamodb import BINDING_TABLE, LocalDynamoDB, create_table
from services.session_binding.ledger import (
    Completion,
    CompletionInterrupted,
    Failure,
    LedgerRefusal,
    Record,
    SessionLedger,
    Status,
    StoreUnavailable,
)

SESSION = "urn:ietf:params:oauth:request_uri:ledger-test"
ALICE, BOB = "issuer\nalice", "issuer\nbob"


@pytest.fixture
def ledger(local_dynamodb: LocalDynamoDB) -> SessionLedger:
    name = f"ledger-{uuid.uuid4().hex[:12]}"
    client = local_dynamodb.client()
    create_table(client, name, BINDING_TABLE)
    return SessionLedger(name, lambda: client, lease_s=5, max_wait_s=2)


def release_on_failure(_exc: Exception, _record: Record) -> Failure:
    return Failure()


def counter() -> tuple[list[int], Callable[[Record], Awaitable[None]]]:
    calls: list[int] = []

    async def call(_record: Record) -> None:
        calls.append(1)

    return calls, call


async def started(ledger: SessionLedger, user: str = ALICE, flow: str = "flow-1") -> None:
    assert await ledger.start(SESSION, user, flow_id=flow, provider="notes", expires_at=2_000_000_000) is None


def test_one_call_then_remembered(ledger: SessionLedger) -> None:
    calls, call = counter()

    async def scenario() -> list[Completion]:
        await started(ledger)
        return [await ledger.complete(SESSION, ALICE, call, flow_id="flow-1", on_failure=release_on_failure) for _ in range(2)]

    assert asyncio.run(scenario()) == [Completion.CALLED, Completion.ALREADY_DONE]
    assert calls == [1]


def test_start_again_by_the_same_user_and_flow_is_fine_anything_else_is_not(ledger: SessionLedger) -> None:
    async def scenario() -> None:
        await started(ledger)
        await started(ledger)  # a second click on the same link
        other_user = await ledger.start(SESSION, BOB, flow_id="flow-1", provider="notes", expires_at=2_000_000_000)
        other_flow = await ledger.start(SESSION, ALICE, flow_id="flow-2", provider="notes", expires_at=2_000_000_000)
        for record in (other_user, other_flow):
            assert record is not None and record.status is Status.STARTED and record.started_by(ALICE)

    asyncio.run(scenario())


@pytest.mark.parametrize(("user", "flow"), [(BOB, "flow-1"), (ALICE, "flow-2")])
def test_claim_needs_the_initiator_and_the_flow(ledger: SessionLedger, user: str, flow: str) -> None:
    calls, call = counter()

    async def scenario() -> None:
        await started(ledger)
        with pytest.raises(LedgerRefusal) as refused:
            await ledger.complete(SESSION, user, call, flow_id=flow, on_failure=release_on_failure)
        assert refused.value.record is not None and refused.value.record.status is Status.STARTED

    asyncio.run(scenario())
    assert calls == []


def test_never_started_is_refused(ledger: SessionLedger) -> None:
    calls, call = counter()

    async def scenario() -> None:
        with pytest.raises(LedgerRefusal) as refused:
            await ledger.complete(SESSION, ALICE, call, flow_id=None, on_failure=release_on_failure)
        assert refused.value.record is None

    asyncio.run(scenario())
    assert calls == []


def test_cancelled_is_never_claimed_again_and_completed_is_never_cancelled(ledger: SessionLedger) -> None:
    calls, call = counter()

    async def scenario() -> None:
        await started(ledger)
        burned, record = await ledger.cancel(SESSION, "other_browser")
        assert burned and record.status is Status.CANCELLED and record.started_by(ALICE)
        burned, again = await ledger.cancel(SESSION, "other_user")
        assert not burned and again.status is Status.CANCELLED and again.reason == "other_browser"  # first reason stays
        with pytest.raises(LedgerRefusal) as refused:
            await ledger.complete(SESSION, ALICE, call, flow_id="flow-1", on_failure=release_on_failure)
        assert refused.value.record is not None and refused.value.record.status is Status.CANCELLED
        assert await ledger.start(SESSION, ALICE, flow_id="flow-1", provider="notes", expires_at=2_000_000_000) is not None

        other = "urn:ietf:params:oauth:request_uri:completed"
        await ledger.start(other, ALICE, flow_id="f", provider="notes", expires_at=2_000_000_000)
        await ledger.complete(other, ALICE, call, flow_id="f", on_failure=release_on_failure)
        burned, standing = await ledger.cancel(other, "other_browser")
        assert not burned and standing.status is Status.COMPLETED

    asyncio.run(scenario())
    assert calls == [1]


def test_a_definitive_failure_cancels_a_transient_one_releases(ledger: SessionLedger) -> None:
    async def refused(_record: Record) -> None:
        raise RuntimeError("AgentCore refused")

    async def scenario() -> list[Any]:
        await started(ledger)
        with pytest.raises(RuntimeError):
            await ledger.complete(SESSION, ALICE, refused, flow_id="flow-1", on_failure=lambda *_: Failure())
        released = await ledger.get(SESSION)
        with pytest.raises(RuntimeError):
            await ledger.complete(SESSION, ALICE, refused, flow_id="flow-1", on_failure=lambda *_: Failure(uncertain=True))
        uncertain = await ledger.get(SESSION)
        with pytest.raises(RuntimeError):
            await ledger.complete(
                SESSION, ALICE, refused, flow_id="flow-1", on_failure=lambda *_: Failure(cancel_reason="agentcore_refused")
            )
        return [released, uncertain, await ledger.get(SESSION)]

    released, uncertain, cancelled = asyncio.run(scenario())
    assert released.status is Status.STARTED and not released.uncertain
    assert uncertain.status is Status.STARTED and uncertain.uncertain
    assert cancelled.status is Status.CANCELLED and cancelled.reason == "agentcore_refused"


def test_duplicates_in_one_process_share_the_first_calls_failure(ledger: SessionLedger) -> None:
    async def scenario() -> None:
        await started(ledger)
        release = asyncio.Event()
        calls = []

        async def failing(_record: Record) -> None:
            calls.append(1)
            await release.wait()
            raise RuntimeError("throttled")

        first = asyncio.create_task(ledger.complete(SESSION, ALICE, failing, flow_id="flow-1", on_failure=release_on_failure))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(ledger.complete(SESSION, ALICE, failing, flow_id="flow-1", on_failure=release_on_failure))
        await asyncio.sleep(0.05)
        release.set()
        for task in (first, second):
            with pytest.raises(RuntimeError, match="throttled"):
                await task
        assert calls == [1]
        _, ok = counter()
        assert await ledger.complete(SESSION, ALICE, ok, flow_id="flow-1", on_failure=release_on_failure) is Completion.CALLED

    asyncio.run(scenario())


def test_a_cancelled_first_call_leaves_waiters_an_answer_and_no_claim_behind(ledger: SessionLedger) -> None:
    async def scenario() -> Record | None:
        await started(ledger)

        async def forever(_record: Record) -> None:
            await asyncio.sleep(60)

        first = asyncio.create_task(ledger.complete(SESSION, ALICE, forever, flow_id="flow-1", on_failure=release_on_failure))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(ledger.complete(SESSION, ALICE, forever, flow_id="flow-1", on_failure=release_on_failure))
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(CompletionInterrupted):
            await second
        with pytest.raises(asyncio.CancelledError):
            await first
        return await ledger.get(SESSION)

    record = asyncio.run(scenario())
    # The request went away mid-call: AgentCore may have acted, so the session is free again but flagged.
    assert record is not None and record.status is Status.STARTED and record.uncertain


def test_store_errors_are_store_unavailable(local_dynamodb: LocalDynamoDB) -> None:
    client = local_dynamodb.client()
    ledger = SessionLedger("absent-table", lambda: client, lease_s=5)
    with pytest.raises(StoreUnavailable):
        asyncio.run(ledger.get(SESSION))
