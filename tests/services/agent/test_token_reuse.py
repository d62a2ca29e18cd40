"""Outbound token reuse inside a task (issue 19, item 1): one vault read serves many tool calls of one person
at one provider, until shortly before the token ends; evicted on 401, 403, disconnect and sign-out; never
another person's."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from services.agent.token_reuse import MAX_REUSE_S, OPAQUE_REUSE_S, REUSE_MARGIN_S, OutboundTokenCache, reuse_until
from tests.services.conftest import ALICE, BOB, AgentHarness, Browser

NOW = 1_800_000_000.0


def _jwt(payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(payload)}.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("token", "until"),
    [
        (_jwt({"exp": NOW + 120}), NOW + 120 - REUSE_MARGIN_S),  # a JWT: until shortly before its exp
        (_jwt({"exp": NOW + 3600}), NOW + MAX_REUSE_S),  # never longer than the bound
        (_jwt({"sub": "x"}), NOW + OPAQUE_REUSE_S),  # a JWT without exp
        (_jwt({"exp": True}), NOW + OPAQUE_REUSE_S),
        ("at-opaque-token", NOW + OPAQUE_REUSE_S),  # not a JWT
        ("a.!!!.c", NOW + OPAQUE_REUSE_S),
    ],
)
def test_how_long_a_token_is_reused(token: str, until: float) -> None:
    assert reuse_until(token, NOW) == until


def test_the_cache_is_bounded_keyed_and_expiring() -> None:
    clock = [NOW]
    cache = OutboundTokenCache(max_entries=2, clock=lambda: clock[0])
    cache.put(("alice", "notes", ("a",)), "t1")
    cache.put(("bob", "notes", ("a",)), "t2")
    assert cache.get(("alice", "notes", ("a",))) == "t1"
    assert cache.get(("alice", "notes", ("b",))) is None and cache.get(("alice", "tasks", ("a",))) is None
    cache.put(("carol", "notes", ("a",)), "t3")  # bob's is the least recently used
    assert cache.get(("bob", "notes", ("a",))) is None and len(cache) == 2
    cache.put(("alice", "tasks", ("a",)), _jwt({"exp": NOW + 10}))  # ends within the margin: not kept
    assert cache.get(("alice", "tasks", ("a",))) is None
    clock[0] += OPAQUE_REUSE_S
    assert cache.get(("alice", "notes", ("a",))) is None, "expired"


def test_eviction_by_person_and_provider() -> None:
    cache = OutboundTokenCache(max_entries=10)
    for user, provider in (("alice", "notes"), ("alice", "tasks"), ("bob", "notes")):
        cache.put((user, provider, ()), f"{user}-{provider}")
    cache.evict("alice", "notes")
    assert [cache.get(k) for k in (("alice", "notes", ()), ("alice", "tasks", ()), ("bob", "notes", ()))] == [
        None,
        "alice-tasks",
        "bob-notes",
    ]
    cache.evict("alice")
    assert cache.get(("alice", "tasks", ())) is None and cache.get(("bob", "notes", ())) == "bob-notes"


def _vault_reads(agent: AgentHarness) -> int:
    return sum(1 for c in agent.agentcore.calls if c.operation == "token")


def _consented(agent: AgentHarness, who: Any = ALICE) -> Browser:
    browser = agent.browser(who)
    agent.consent(browser, agent.chat(browser))
    return browser


def test_one_vault_read_serves_many_tool_calls(agent: AgentHarness) -> None:
    browser = _consented(agent)
    before = _vault_reads(agent)
    for _ in range(10):
        assert agent.chat(browser).of("tool_result")[0]["ok"] is True
    assert _vault_reads(agent) - before == 1, "at most one GetResourceOauth2Token for ten tool calls"


def test_a_401_evicts_and_asks_again(agent: AgentHarness) -> None:
    browser = _consented(agent)
    agent.chat(browser)
    agent.resource.revoked.update(agent.agentcore.vault.values())  # the provider withdrew the grant
    turn = agent.chat(browser)
    assert turn.of("authorization_required"), "a refused token is not reused: consent is asked anew"


def test_a_disconnect_and_a_sign_out_evict(agent: AgentHarness) -> None:
    browser = _consented(agent)
    agent.chat(browser)
    runtime = agent.agent_app.state.runtime()
    assert len(runtime.tokens.reused) == 1
    browser.client.post("/api/connections/notes/disconnect", json={}, headers=browser.headers())
    assert len(runtime.tokens.reused) == 0
    bob = _consented(agent, BOB)
    agent.chat(bob)
    assert len(runtime.tokens.reused) == 1
    bob.client.post("/api/sign-out", json={}, headers=bob.headers())
    assert len(runtime.tokens.reused) == 0


def test_a_token_is_never_reused_for_another_person(agent: AgentHarness) -> None:
    _consented(agent)
    bob = agent.browser(BOB)
    assert agent.chat(bob).of("authorization_required"), "bob consents for himself"
    seen = {token for _, token in agent.resource.seen}
    assert all(token.startswith(f"at-{ALICE.sub}") for token in seen)
