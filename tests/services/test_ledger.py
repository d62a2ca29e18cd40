"""The completion ledger: one AgentCore call per session, whatever the browser does."""

from __future__ import annotations

import asyncio

import pytest

from services.session_binding.ledger import Completion, CompletionInterrupted, CompletionLedger, OtherUsersSession


def test_one_call_then_remembered() -> None:
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1

    async def scenario() -> list[Completion]:
        ledger = CompletionLedger()
        return [await ledger.complete("s", "alice", call), await ledger.complete("s", "alice", call)]

    assert asyncio.run(scenario()) == [Completion.CALLED, Completion.ALREADY_DONE]
    assert calls == 1


def test_other_user_is_refused_while_in_flight_and_after() -> None:
    async def scenario() -> None:
        ledger = CompletionLedger()
        release = asyncio.Event()

        async def slow() -> None:
            await release.wait()

        first = asyncio.create_task(ledger.complete("s", "alice", slow))
        await asyncio.sleep(0)
        with pytest.raises(OtherUsersSession):
            await ledger.complete("s", "bob", slow)
        release.set()
        assert await first is Completion.CALLED
        with pytest.raises(OtherUsersSession):
            await ledger.complete("s", "bob", slow)

    asyncio.run(scenario())


def test_waiters_share_the_first_calls_failure() -> None:
    async def scenario() -> None:
        ledger = CompletionLedger()
        release = asyncio.Event()

        async def failing() -> None:
            await release.wait()
            raise RuntimeError("throttled")

        first = asyncio.create_task(ledger.complete("s", "alice", failing))
        await asyncio.sleep(0)
        second = asyncio.create_task(ledger.complete("s", "alice", failing))
        await asyncio.sleep(0)
        release.set()
        for task in (first, second):
            with pytest.raises(RuntimeError, match="throttled"):
                await task
        # Not remembered as done: a later attempt calls again.
        calls = []

        async def ok() -> None:
            calls.append(1)

        assert await ledger.complete("s", "alice", ok) is Completion.CALLED

    asyncio.run(scenario())


def test_a_cancelled_first_call_leaves_waiters_an_answer() -> None:
    async def scenario() -> None:
        ledger = CompletionLedger()

        async def forever() -> None:
            await asyncio.sleep(60)

        first = asyncio.create_task(ledger.complete("s", "alice", forever))
        await asyncio.sleep(0)
        second = asyncio.create_task(ledger.complete("s", "alice", forever))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(CompletionInterrupted):
            await second

    asyncio.run(scenario())


def test_bounded() -> None:
    async def noop() -> None:
        return None

    async def scenario() -> int:
        ledger = CompletionLedger(max_entries=10)
        for i in range(50):
            await ledger.complete(f"s{i}", "alice", noop)
        return len(ledger)

    assert asyncio.run(scenario()) == 10
