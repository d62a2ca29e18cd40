"""Load: LOAD_USERS people (200) complete a consent each through the local stack while LOAD_ATTACKERS
(50) replay and swap their links. Part of `make test` (about 55 s on 2 cores); `make load` runs it alone.

Pass criteria: no error for any legitimate person (a person whose session an attacker's swap
cancelled asks again and completes); every legitimate completion recorded exactly once by the emulator (one CompleteResourceTokenAuth per person, one vault entry per person); no
completion for any attacker (no vault entry, every attempt refused, no AgentCore call caused).
Figures (throughput, p50/p99) are printed and written to tests/load/artifacts/report.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.demo.stack import PROVIDER_NAME, SCOPES, WORKLOAD_NAME, DemoStack
from local.idp import OIDC_PROVIDER_DIR, DemoUser
from tests.load.driver import LoadRun, make_users

pytestmark = pytest.mark.load

USERS = int(os.environ.get("LOAD_USERS", "200"))
ATTACKERS = int(os.environ.get("LOAD_ATTACKERS", "50"))
CONCURRENCY = int(os.environ.get("LOAD_CONCURRENCY", "24"))
REPORT = Path(__file__).parent / "artifacts" / "report.json"
People = tuple[tuple[DemoUser, ...], tuple[DemoUser, ...]]


@pytest.fixture(scope="module")
def people() -> People:
    return make_users("user", USERS), make_users("attacker", ATTACKERS)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, people: People) -> Iterator[DemoStack]:
    if not OIDC_PROVIDER_DIR.is_dir():
        if os.environ.get("REQUIRE_NODE_IDP"):
            pytest.fail("node_modules/oidc-provider is missing (make install runs npm ci)")
        pytest.skip("node_modules/oidc-provider is missing (npm ci)")
    users, attackers = people
    demo = DemoStack.on_free_ports(log_dir=tmp_path_factory.mktemp("load-logs"), users=users + attackers)
    try:
        yield demo
    finally:
        demo.stop()


def test_many_people_consent_while_attackers_replay_and_swap(stack: DemoStack, people: People) -> None:
    users, attackers = people
    result = LoadRun(stack, users, attackers, CONCURRENCY).run()
    summary = result.summary()
    vault = stack.emulator.vault_snapshot()
    completed = [r for r in stack.log_lines("session_binding") if r.get("event") == "binding_completed"]
    summary |= {
        "agentcore_complete_calls": stack.emulator.count("CompleteResourceTokenAuth"),
        "vault_entries": len(vault),
        "binding_completed_events": len(completed),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(summary, indent=2) + "\n")
    print("\nload:", json.dumps(summary, indent=2))

    assert result.errors == [], result.errors[:10]
    assert result.flows_ok == len(users)
    scopes = " ".join(sorted(SCOPES.split()))
    assert sorted(vault) == sorted(f"{WORKLOAD_NAME}|{u.sign_in_sub}|{PROVIDER_NAME}|{scopes}" for u in users), (
        "one grant per person, none for attackers"
    )
    assert stack.emulator.count("CompleteResourceTokenAuth") == len(users), "exactly once per person; attackers caused none"
    assert len(completed) == len(users)
    assert result.attack_errors == [], result.attack_errors[:10]
    assert sum(result.attacks.values()) == 3 * len(users), "every start link and landing URL tried, every landing URL replayed"
    # Swaps must really come before the owner's own use (attackers get a head start) and replays after.
    # A swap cancels the session (403 to the attacker); its owner is told, asks again and completes.
    assert result.attacks["landing before-owner: 403"] + sum(n for k, n in result.attacks.items() if k.startswith("landing after")) == len(
        users
    )
    assert result.attacks["landing before-owner: 403"] >= 0.9 * len(users), dict(result.attacks)
    # A swap that reached the service first cancelled the session, and its owner asked again; one that lost
    # the race to its owner's own landing (sent at the same moment) met a completed session instead.
    assert 0.9 * len(users) <= result.asked_again <= result.attacks["landing before-owner: 403"], dict(result.attacks)
    assert result.attacks["start before-owner: 403"] >= 0.9 * len(users), dict(result.attacks)
    assert sum(n for k, n in result.attacks.items() if k.startswith("replay after-owner")) == len(users)
