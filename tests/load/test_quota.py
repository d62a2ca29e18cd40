"""At the quota: people consent and use a tool through the local stack while the AgentCore Identity emulator
throttles each operation at a rate, as AWS's per-account quotas do (`local/agentcore_identity/quotas.py`).

Scale: AWS documents GetResourceOauth2Token 200, CompleteResourceTokenAuth 100 and GetWorkloadAccessToken*
200 requests per second (per account and Region, adjustable). Here each is SCALE = 1/40 of that: 5, 2.5
and 5 per second, each bucket holding one second's worth. A tenth would need 60 calls a second and more to
reach 3 times the quota, more than the whole local stack sends on 2 cores; at a fortieth, PEOPLE (16)
people taking a step at the same moment send 11 to 16 first attempts of one operation within one second
(fewer when the machine is busy with other work), 2 to 6 times its scaled quota (the run prints what it
measured: `peak_first_attempts_in_1s`). A person told "busy, try again in a few seconds" waits
PERSON_WAIT_S (the pages' 5 seconds on the same scale) and tries again with the others still busy. The
services keep the deployed retry settings (botocore standard mode, AGENTCORE_MAX_ATTEMPTS 3); each
process sends up to 16 AgentCore calls at once, as four tasks with the deployed AGENTCORE_CONCURRENCY of
4 would.

What must hold:
(a) no consent loop: each person is asked to consent once, and never again after the binding page said
    "Authorization complete", whatever AgentCore throttled;
(b) no lost grant: every consent completed at the provider ends in the vault, if need be after reloads
    of the binding page (the page's "busy: reload" leaves the session to be claimed again);
(c) bounded retries with jitter: no logical call (botocore's invocation id) reaches the emulator more than
    AGENTCORE_MAX_ATTEMPTS times, each chat turn asks for the outbound token at most once, and the first
    retries of different calls are spread over botocore's backoff window, not bunched at one delay;
(d) when AgentCore keeps throttling (a quota of 0), the binding page and the chat say, in a sentence,
    that the identity service is busy and to try again in a few seconds, after at most
    AGENTCORE_MAX_ATTEMPTS attempts; once it recovers, the same person finishes without a new consent.

Figures go to stdout and tests/load/artifacts/quota.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.agentcore_identity.quotas import DOCUMENTED_TPS, WORKLOAD_ACCESS_QUOTA, build_quotas
from local.demo.stack import PROVIDER_NAME, SCOPES, WORKLOAD_NAME, DemoStack
from local.idp import OIDC_PROVIDER_DIR
from tests.load.driver import make_users
from tests.load.quota_driver import BUSY_PAGE, Person, QuotaRun, figures, first_retry_delays, invocations, sdk_request

pytestmark = pytest.mark.load

SCALE = 1 / 40
PEOPLE = 16
PERSON_WAIT_S = 5 * SCALE  # the 5 seconds the pages ask for, on the quotas' scale
MAX_ATTEMPTS = 3
ATTEMPTS_ENV = {"AGENTCORE_MAX_ATTEMPTS": str(MAX_ATTEMPTS), "AGENTCORE_CONCURRENCY": "16"}  # four tasks' worth
# The scaled quota of each operation the services call (the agent fetches workload tokens by user id).
QUOTAS = {
    "GetWorkloadAccessTokenForUserId": DOCUMENTED_TPS[WORKLOAD_ACCESS_QUOTA] * SCALE,
    "GetResourceOauth2Token": DOCUMENTED_TPS["GetResourceOauth2Token"] * SCALE,
    "CompleteResourceTokenAuth": DOCUMENTED_TPS["CompleteResourceTokenAuth"] * SCALE,
}
REPORT = Path(__file__).parent / "artifacts" / "quota.json"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    if not OIDC_PROVIDER_DIR.is_dir():
        if os.environ.get("REQUIRE_NODE_IDP"):
            pytest.fail("node_modules/oidc-provider is missing (make install runs npm ci)")
        pytest.skip("node_modules/oidc-provider is missing (npm ci)")
    users = make_users("quota", PEOPLE + 1)
    demo = DemoStack.on_free_ports(
        log_dir=tmp_path_factory.mktemp("quota-logs"),
        users=users,
        quotas=build_quotas(documented_scale=SCALE),  # as DEMO_AGENTCORE_QUOTAS gives them to `make demo`
        service_env={"agent": ATTEMPTS_ENV, "session_binding": ATTEMPTS_ENV},
    )
    try:
        yield demo
    finally:
        demo.stop()


def test_at_several_times_the_quota_nobody_loops_or_loses_a_grant(stack: DemoStack) -> None:
    emulator = stack.emulator
    emulator.record_calls = True
    run = QuotaRun(stack, stack.users, person_wait_s=PERSON_WAIT_S)
    *people, late = run.people  # `late` lands after the others, while AgentCore keeps throttling
    try:
        run.in_rounds("sign_in", run.people, run.sign_in)
        run.in_rounds("ask", run.people, run.ask)
        run.in_rounds("consent", run.people, run.consent)
        run.in_rounds("land", people, run.land)
        run.in_rounds("use", people, run.use)
        throttled_under_load = {operation: emulator.quotas.throttled[operation] for operation in QUOTAS}
        keeps_throttling(run, late)
    finally:
        run.close()
    grouped = invocations(emulator.calls)
    report = figures(run, grouped, QUOTAS)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print("\nquota:", json.dumps(report, indent=2))

    # The run was at the quota: every metered operation was throttled while everyone took their steps.
    assert all(throttled_under_load.values()), throttled_under_load
    # (a) Asked once each; never again once consented (QuotaRun.chat fails the run on the spot otherwise).
    assert [p.prompts for p in run.people] == [1] * len(run.people)
    assert agent_metric(stack, "AuthorizationPrompts") == len(run.people)
    # (b) Every consent is in the vault, once.
    scopes = " ".join(sorted(SCOPES.split()))
    assert sorted(emulator.vault_snapshot()) == sorted(f"{WORKLOAD_NAME}|{p.user.sign_in_sub}|{PROVIDER_NAME}|{scopes}" for p in run.people)
    completed = [r for r in stack.log_lines("session_binding") if r.get("event") == "binding_completed"]
    assert len(completed) == len(run.people)
    # (c) Bounded: attempts per logical call, and per chat turn at most one logical outbound-token call.
    assert max(len(attempts) for attempts in grouped.values()) <= MAX_ATTEMPTS
    assert {sdk_request(call).get("max") for attempts in grouped.values() for call in attempts} == {str(MAX_ATTEMPTS)}
    outbound_calls = sum(1 for operation, _ in grouped if operation == "GetResourceOauth2Token")
    assert outbound_calls <= sum(p.chats for p in run.people)
    # (c) Jitter: botocore waits rand(0, 1) s before a throttled call's first retry. Retries at a fixed delay
    # would arrive within a few milliseconds of each other; a busy machine only widens the spread.
    delays = first_retry_delays(grouped)
    assert len(delays) >= 10, report["first_retry_delay_s"]
    assert max(delays) - min(delays) > 0.25, sorted(round(d, 3) for d in delays)


def keeps_throttling(run: QuotaRun, late: Person) -> None:
    """(d) A quota of 0: the binding page and the chat say "busy, try again" after at most MAX_ATTEMPTS
    attempts each; once AgentCore recovers, the same person completes and uses the grant, asked nothing."""
    emulator, browser = run.stack.emulator, late.browser
    emulator.quotas.set("CompleteResourceTokenAuth", 0)
    before = emulator.count("CompleteResourceTokenAuth")
    page = browser.follow(late.landing)
    assert page.status_code == 503 and BUSY_PAGE in page.text and page.headers["retry-after"] == "5", page.text
    assert 1 <= emulator.count("CompleteResourceTokenAuth") - before <= MAX_ATTEMPTS
    assert not any(late.user.sign_in_sub in key for key in emulator.vault_snapshot())
    emulator.quotas.set("CompleteResourceTokenAuth", QUOTAS["CompleteResourceTokenAuth"])
    assert run.land(late), "the reload after the throttling completes it"

    emulator.quotas.set("GetResourceOauth2Token", 0)
    before = emulator.count("GetResourceOauth2Token")
    assert run.chat(late, "use", after_consent=late.flow) is None  # "busy", no consent prompt (QuotaRun.chat checks both)
    assert 1 <= emulator.count("GetResourceOauth2Token") - before <= MAX_ATTEMPTS
    assert late.busy["use"] == 1  # the chat's error was exactly IDENTITY_BUSY (QuotaRun.chat checks it)
    emulator.quotas.set("GetResourceOauth2Token", QUOTAS["GetResourceOauth2Token"])
    assert run.use(late)


def agent_metric(stack: DemoStack, name: str) -> int:
    """The sum of an EMF count the agent wrote to its log."""
    return sum(int(record[name]) for record in stack.log_lines("agent") if "_aws" in record and name in record)
