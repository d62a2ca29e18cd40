"""Bedrock throttling beyond the agent's retries: the chat ends with a readable error, then works again."""

from __future__ import annotations

from tests.faults.conftest import DATA_PLANE, OpenStack
from tests.support.person import event

BEDROCK_MAX_ATTEMPTS = 2


def test_model_throttling_ends_the_turn_with_a_readable_error_then_the_next_turn_works(open_stack: OpenStack) -> None:
    site = open_stack(service_env={"agent": {"BEDROCK_MAX_ATTEMPTS": str(BEDROCK_MAX_ATTEMPTS)}})
    model = site.stack.model
    assert model is not None
    alice = site.person(site.alice)

    model.script("ThrottlingException", BEDROCK_MAX_ATTEMPTS)
    events = alice.chat(site.url, "hello")
    assert [kind for kind, _ in events] == ["error", "done"]
    assert event(events, "error") == {"code": "model_busy", "message": "The model is busy right now. Please try again in a few seconds."}
    assert site.model_calls() == BEDROCK_MAX_ATTEMPTS  # retried by botocore, then given up
    assert [r["code"] for r in site.events("agent", "model_error")] == ["ThrottlingException"]
    assert all(site.calls(op) == 0 for op in DATA_PLANE)

    events = alice.chat(site.url, "hello")
    assert [kind for kind, _ in events] == ["message", "done"]
    assert "local demo model" in event(events, "message")["text"]
    # One burst shorter than the retries is absorbed.
    model.script("ThrottlingException", BEDROCK_MAX_ATTEMPTS - 1)
    event(alice.chat(site.url, "show my notes"), "authorization_required")
