"""A request that comes back from a consent round trip carries the start link's flow token (`after_consent`).
The agent asks AgentCore how that session ended: declined, it says so and asks nothing; a token that is not
this person's (or not ours) is ignored, so nobody can ask about another person's consent session."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.services.conftest import ALICE, BOB, AgentHarness, ChatTurn, parse_sse


def _flow_of(turn: ChatTurn) -> str:
    [prompt] = turn.of("authorization_required")
    return str(parse_qs(urlsplit(prompt["start_url"]).query)["flow"][0])


def _resume(agent: AgentHarness, who: Any, flow: str) -> ChatTurn:
    browser = agent.browser(who)
    body = {"message": "Who am I?", "history": [], "after_consent": flow}
    response = browser.client.post("/api/chat", json=body, headers=browser.headers())
    streamed = response.headers.get("content-type", "").startswith("text/event-stream")
    return ChatTurn(response.status_code, parse_sse(response.text) if streamed else [], response.text)


def _asked_about(agent: AgentHarness) -> list[str]:
    return [str(c.body["sessionUri"]) for c in agent.agentcore.calls if c.operation == "token" and "sessionUri" in c.body]


def test_a_declined_consent_is_said_once_and_no_new_session_starts(agent: AgentHarness) -> None:
    first = agent.chat(agent.browser(ALICE))
    flow = _flow_of(first)
    [session] = list(agent.agentcore.custom_states)
    agent.agentcore.failed.add(session)

    turn = _resume(agent, ALICE, flow)
    [declined] = turn.of("authorization_declined")
    assert declined["display_name"] == "Demo API" and "nothing was shared" in declined["message"]
    assert turn.of("authorization_required") == [] and turn.events[-1][0] == "done"
    assert _asked_about(agent) == [session]
    assert list(agent.agentcore.custom_states) == [session], "no new consent session"
    assert "customState" not in agent.agentcore.calls[-1].body, "the session keeps its own customState"


def test_a_session_still_in_progress_is_offered_again_not_replaced(agent: AgentHarness) -> None:
    flow = _flow_of(agent.chat(agent.browser(ALICE)))
    turn = _resume(agent, ALICE, flow)
    assert len(turn.of("authorization_required")) == 1


def test_another_persons_flow_token_is_ignored(agent: AgentHarness) -> None:
    alices = _flow_of(agent.chat(agent.browser(ALICE)))
    [session] = list(agent.agentcore.custom_states)
    agent.agentcore.failed.add(session)
    turn = _resume(agent, BOB, alices)
    assert turn.of("authorization_declined") == [] and len(turn.of("authorization_required")) == 1
    assert _asked_about(agent) == [], "bob's request never asks about alice's session"


def test_a_forged_or_oversized_token_is_ignored_or_refused(agent: AgentHarness) -> None:
    turn = _resume(agent, ALICE, "v1.not-a-signed-token")
    assert turn.status == 200 and len(turn.of("authorization_required")) == 1 and _asked_about(agent) == []
    assert _resume(agent, ALICE, "x" * 5000).status == 400
