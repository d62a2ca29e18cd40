"""A request that comes back from a consent round trip carries the start link's flow token (`after_consent`).
The agent asks AgentCore how that session ended: declined, it says so and asks nothing; a token that is not
this person's (or not ours) is ignored, so nobody can ask about another person's consent session."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from services.common.flow import issue_binding_cookie, issue_flow_token, read_flow_token
from services.common.signed import Keyring
from tests.services.conftest import ALICE, BOB, AgentHarness, ChatTurn, parse_sse


def agent_keyring(agent: AgentHarness) -> Keyring:
    """The keys the agent signs flow tokens with (the harness's settings)."""
    keyring: Keyring = agent.agent_app.state.runtime().keyring
    return keyring


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
    assert declined["display_name"] == "Demo Notes" and "Nothing was shared" in declined["message"]
    assert turn.of("authorization_required") == [] and turn.events[-1][0] == "done"
    assert _asked_about(agent) == [session]
    assert list(agent.agentcore.custom_states) == [session], "no new consent session"
    assert "customState" not in agent.agentcore.calls[-1].body, "the session keeps its own customState"


def test_a_session_still_in_progress_is_offered_again_not_replaced(agent: AgentHarness) -> None:
    flow = _flow_of(agent.chat(agent.browser(ALICE)))
    [session] = list(agent.agentcore.custom_states)
    turn = _resume(agent, ALICE, flow)
    assert len(turn.of("authorization_required")) == 1
    again = read_flow_token(agent_keyring(agent), _flow_of(turn), now=int(time.time()))
    assert again.session_uri == session and list(agent.agentcore.custom_states) == [session], "the same session, no new one"


def test_a_session_agentcore_no_longer_knows_becomes_a_new_request(agent: AgentHarness) -> None:
    flow = _flow_of(agent.chat(agent.browser(ALICE)))
    [session] = list(agent.agentcore.custom_states)
    agent.agentcore._pending.clear()  # expired at AgentCore: asked about, it answers ValidationException
    turn = _resume(agent, ALICE, flow)
    assert len(turn.of("authorization_required")) == 1
    [fresh] = [s for s in agent.agentcore.custom_states if s != session]
    assert agent.agentcore.custom_states[fresh], "a new session with a customState of its own"


def test_another_persons_flow_token_is_ignored(agent: AgentHarness) -> None:
    alices = _flow_of(agent.chat(agent.browser(ALICE)))
    [session] = list(agent.agentcore.custom_states)
    agent.agentcore.failed.add(session)
    turn = _resume(agent, BOB, alices)
    assert turn.of("authorization_declined") == [] and len(turn.of("authorization_required")) == 1
    assert _asked_about(agent) == [], "bob's request never asks about alice's session"


def test_a_token_of_another_purpose_or_provider_is_ignored(agent: AgentHarness) -> None:
    flow = read_flow_token(agent_keyring(agent), _flow_of(agent.chat(agent.browser(ALICE))), now=int(time.time()))
    keyring = agent_keyring(agent)
    cookie = issue_binding_cookie(keyring, flow=flow)  # signed by the same keys, for another purpose
    other = issue_flow_token(
        keyring,
        identity=ALICE,
        session_uri=flow.session_uri,
        authorization_url=flow.authorization_url,
        provider="someone-elses-provider",
        scopes=flow.scopes,
        flow_id=flow.flow_id,
        now=int(time.time()),
    )
    for token in (cookie, other):
        turn = _resume(agent, ALICE, token)
        assert turn.status == 200 and len(turn.of("authorization_required")) == 1
    assert _asked_about(agent) == []


def test_a_forged_or_oversized_token_is_ignored_or_refused(agent: AgentHarness) -> None:
    turn = _resume(agent, ALICE, "v1.not-a-signed-token")
    assert turn.status == 200 and len(turn.of("authorization_required")) == 1 and _asked_about(agent) == []
    assert _resume(agent, ALICE, "x" * 5000).status == 400
