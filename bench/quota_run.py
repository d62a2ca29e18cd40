"""The quota load run: how many AgentCore Identity calls a chat, a tool call and a consent cost, counted
by the AgentCore stand-in (`/_emulator/stats`, calls per operation), then turned into what one account
sustains at the documented quotas (`bench/quotas.py`).

Two agent tasks (uvicorn, one worker each, on the service core) share the stand-ins of `bench/agent.py`,
as tasks behind the ALB share AgentCore:
1. consent: each person's first chat on task one asks for consent, and the bench completes that session
   at the stand-in with one `CompleteResourceTokenAuth`, as the session binding service does once per
   completion (`bench/binding.py` drives the service itself);
2. first chats: each person chats once on task two, which holds no token of theirs yet;
3. next chats: each person chats again on task two, `chats_per_person - 1` times.
Tool calls are counted from the answers' streams (`tool_result` events that succeeded); the stand-in
model asks for one tool per chat.

    python -m bench.quota_run [--people 50] [--chats 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from bench import agent
from bench.loadgen import LoadResult, run_load
from bench.procs import HOST, free_port, uvicorn
from bench.quotas import quota_table

CONCURRENCY = 4  # a few chats in flight at once, as from several people


def tool_calls(stream: bytes) -> int:
    """Tool calls that succeeded in one chat's server-sent events."""
    done = 0
    for block in stream.decode("utf-8", "replace").split("\n\n"):
        lines = block.split("\n")
        if "event: tool_result" not in lines:
            continue
        data = next((line[6:] for line in lines if line.startswith("data: ")), "{}")
        try:
            done += json.loads(data).get("ok") is True
        except ValueError:
            continue
    return done


def _chats(port: int, people: list[tuple[str, str]], rounds: int) -> LoadResult:
    """`rounds` chats per person, the people in turn, `CONCURRENCY` at a time."""
    requests = [agent.chat_request(port, token, sub) for _ in range(rounds) for sub, token in people]
    return asyncio.run(run_load(HOST, port, requests, concurrency=CONCURRENCY, keep_bodies=True))


def _counted(stack: agent.Stack, people: int, chats_per_person: int) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Per unit: how many there were and the AgentCore calls they made; and the load run's own tallies."""
    first_port, second_port = free_port(), free_port()
    with (
        uvicorn("services.agent.main:app", first_port, stack.env, stack.service_core),
        uvicorn("services.agent.main:app", second_port, stack.env, stack.service_core),
    ):
        everyone = [stack.person() for _ in range(people)]
        mark = agent.agentcore_calls(stack.agentcore)
        for sub, token in everyone:
            agent.consent(first_port, token, sub, stack.keyring, stack.agentcore)
        after_consent = agent.agentcore_calls(stack.agentcore)
        first = _chats(second_port, everyone, 1)
        after_first = agent.agentcore_calls(stack.agentcore)
        following = _chats(second_port, everyone, chats_per_person - 1)
        after_next = agent.agentcore_calls(stack.agentcore)
    done = [tool_calls(body) for body in first.bodies + following.bodies]
    measured = {
        "consent": {"count": people, "calls": agent.calls_between(mark, after_consent)},
        "chat_first": {"count": len(first.bodies), "calls": agent.calls_between(after_consent, after_first)},
        "chat_next": {"count": len(following.bodies), "calls": agent.calls_between(after_first, after_next)},
        "tool_call": {"count": sum(done), "calls": agent.calls_between(after_consent, after_next)},
    }
    errors = sum(n for r in (first, following) for status, n in r.statuses.items() if status != 200)
    return measured, {"chats_without_a_tool_call": sum(1 for n in done if n == 0), "errors": errors}


def measure(people: int = 50, chats_per_person: int = 10) -> dict[str, Any]:
    """The load run and its quota table (the results.json `quota` entry)."""
    if chats_per_person < 2:
        raise ValueError("at least two chats per person: a first one and a next one")
    with agent.stack() as stack:
        measured, tallies = _counted(stack, people, chats_per_person)
    load = {"people": people, "chats_per_person": chats_per_person, "tasks": 2, "concurrency": CONCURRENCY, **tallies}
    return {"load": load, "measured": measured, **quota_table(measured)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--chats", type=int, default=10, help="chats per person on the second task")
    args = parser.parse_args()
    print(json.dumps(measure(args.people, args.chats), indent=2))


if __name__ == "__main__":
    main()
