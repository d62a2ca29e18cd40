"""AgentCore Identity throttling, 5xx and latency, injected in the emulator, through the whole stack.

A consent is never reported complete when AgentCore did not complete it, and a completed one is
never lost: the person is told what to do, and what they do next works.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import ServiceSettings
from tests.faults.conftest import (
    BUSY,
    COMPLETE,
    DONE,
    EXPIRED,
    GET_TOKEN,
    IDENTITY_BUSY,
    UNCERTAIN,
    OpenStack,
    uses_stored_token,
)
from tests.support.person import event

MAX_ATTEMPTS = 3  # botocore standard mode: one call and two retries, as deployed (the default, checked below)
TRANSIENT = ["ThrottlingException", "InternalServerException"]


def test_the_shared_stack_makes_three_attempts(open_stack: OpenStack) -> None:
    """The shared stack runs the services with the default number of attempts: what the tests below count on."""
    assert ServiceSettings.model_fields["agentcore_max_attempts"].default == MAX_ATTEMPTS
    site = open_stack()
    for name in ("agent", "session_binding"):
        environ = Path(f"/proc/{site.stack.services[name].process.pid}/environ").read_bytes().split(b"\0")
        assert not any(item.startswith(b"AGENTCORE_MAX_ATTEMPTS=") for item in environ), name


@pytest.mark.parametrize("code", TRANSIENT)
def test_a_burst_shorter_than_the_retries_is_absorbed_and_completes_once(open_stack: OpenStack, code: str) -> None:
    site = open_stack()
    alice = site.person(site.alice)
    binding = site.consent_up_to_binding(alice)

    site.stack.emulator.faults.script(COMPLETE, code, MAX_ATTEMPTS - 1)
    page = alice.follow(binding)

    assert page.status_code == 200 and DONE in page.text
    assert site.calls(COMPLETE) == MAX_ATTEMPTS  # two failed attempts retried by botocore, the third completed
    assert site.completions() == 1 and len(site.vault()) == 1
    # Absorbed by the retries: no AgentCoreErrors (it counts calls that failed after retries), one completion.
    assert site.metric("session_binding", "AgentCoreErrors") == 0
    assert site.metric("session_binding", "BindingsCompleted") == 1
    assert site.metric("session_binding", "BindingsRefused") == 0
    assert uses_stored_token(alice.chat(site.url, "show my notes"))


@pytest.mark.parametrize("code", TRANSIENT)
def test_a_burst_longer_than_the_retries_shows_busy_then_a_reload_completes_once(open_stack: OpenStack, code: str) -> None:
    site = open_stack()
    alice = site.person(site.alice)
    binding = site.consent_up_to_binding(alice)

    # Two failed page loads' worth of errors: the first load and a reload during the burst.
    site.stack.emulator.faults.script(COMPLETE, code, 2 * MAX_ATTEMPTS)
    for load in (1, 2):
        page = alice.follow(binding)
        assert page.status_code == 503, page.text
        assert page.headers["retry-after"] == "5"
        assert BUSY in page.text and DONE not in page.text
        assert site.calls(COMPLETE) == load * MAX_ATTEMPTS
        assert site.completions() == 0 and site.vault() == {}  # never reported complete when it is not

    # The burst is over: the same page, reloaded in the same browser, completes it.
    page = alice.follow(binding)
    assert page.status_code == 200 and DONE in page.text
    assert site.calls(COMPLETE) == 2 * MAX_ATTEMPTS + 1
    assert site.completions() == 1 and len(site.vault()) == 1

    # Reloading the success page does not call AgentCore again.
    again = alice.follow(binding)
    assert again.status_code == 200 and DONE in again.text
    assert site.calls(COMPLETE) == 2 * MAX_ATTEMPTS + 1

    assert site.metric("session_binding", "AgentCoreErrors", ErrorCode=code) == 2
    assert site.metric("session_binding", "BindingsRefused", Reason=f"agentcore_{code}") == 2
    assert site.metric("session_binding", "BindingsCompleted") == 1
    refusals = site.events("session_binding", "binding_refused")
    assert [(r["reason"], r["status"]) for r in refusals] == [(f"agentcore_{code}", 503)] * 2
    assert uses_stored_token(alice.chat(site.url, "show my notes"))


def test_a_completed_consent_survives_throttling_and_5xx_when_the_agent_reads_the_token(open_stack: OpenStack) -> None:
    site = open_stack()
    alice = site.person(site.alice)
    page = alice.follow(site.consent_up_to_binding(alice))
    assert DONE in page.text
    vault = site.vault()
    assert len(vault) == 1

    faults = site.stack.emulator.faults
    for code in TRANSIENT:
        before = site.calls(GET_TOKEN)
        faults.script(GET_TOKEN, code, MAX_ATTEMPTS)
        events = alice.chat(site.url, "show my notes")
        assert [kind for kind, _ in events][-2:] == ["error", "done"]
        assert event(events, "error") == {"code": "identity_unavailable", "message": IDENTITY_BUSY}
        assert "authorization_required" not in [kind for kind, _ in events]
        assert site.calls(GET_TOKEN) - before == MAX_ATTEMPTS
        assert site.vault() == vault

    # The faults are over: the stored token is used, with no new consent.
    assert uses_stored_token(alice.chat(site.url, "show my notes"))
    assert site.vault() == vault and site.completions() == 1
    for code in TRANSIENT:
        assert site.metric("agent", "AgentCoreErrors", ErrorCode=code) == 1
    assert site.metric("agent", "AuthorizationPrompts") == 1  # only the first chat asked
    assert [r["code"] for r in site.events("agent", "identity_error")] == TRANSIENT


def test_latency_above_the_read_timeout_sends_the_person_back_to_the_agent_which_finds_the_token(open_stack: OpenStack) -> None:
    site = open_stack(service_env={"session_binding": {"AGENTCORE_READ_TIMEOUT_S": "1", "AGENTCORE_MAX_ATTEMPTS": "1"}})
    alice = site.person(site.alice)
    binding = site.consent_up_to_binding(alice)

    site.stack.emulator.faults.set(COMPLETE, latency_s=2.0)
    page = alice.follow(binding)
    assert page.status_code == 503, page.text
    assert UNCERTAIN in page.text and "Go back to the agent and ask again" in page.text
    assert page.headers["retry-after"] == "5"
    assert site.metric("session_binding", "AgentCoreErrors", ErrorCode="ReadTimeout") == 1
    assert site.metric("session_binding", "BindingsRefused", Reason="agentcore_read_timeout") == 1
    assert site.metric("session_binding", "BindingsCompleted") == 0

    # AgentCore did complete it, after the binding service stopped waiting.
    assert len(site.wait_for_vault()) == 1
    assert site.calls(COMPLETE) == 1 and site.completions() == 1
    site.stack.emulator.faults.clear()

    # The agent finds the token: no new consent.
    assert uses_stored_token(alice.chat(site.url, "show my notes"))
    # A reload of the binding page now cannot complete it twice; it says the link was used.
    reload = alice.follow(binding)
    assert reload.status_code == 410 and EXPIRED in reload.text
    assert site.completions() == 1
