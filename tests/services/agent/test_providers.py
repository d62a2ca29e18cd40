"""Several outbound providers in one agent: each tool belongs to one provider, asks consent there, and the
grants stay apart (one vault entry per provider); a demo provider gets only the tools its scopes cover."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from services.agent.settings import AgentSettings
from services.agent.tools import tools_for
from services.common.flow import read_flow_token
from tests.services.conftest import ALICE, PROVIDER, AgentHarness, ChatTurn, demo_provider, parse_sse

GITHUB_PROVIDER = "agentcore-ecs-sandbox-github"


def _notes_and_github(resource_url: str) -> list[dict[str, Any]]:
    github = demo_provider(None, scopes="read:user repo", name="github", kind="github", display_name="GitHub")
    github |= {"credential_provider": GITHUB_PROVIDER, "api_url": resource_url}
    return [demo_provider(resource_url), github]


@pytest.fixture
def agent(make_agent: Any, resource: Any) -> AgentHarness:
    harness: AgentHarness = make_agent(providers=_notes_and_github(resource.base_url))
    return harness


def _flow_provider(agent: AgentHarness, turn: ChatTurn) -> str:
    [prompt] = turn.of("authorization_required")
    token = unquote(parse_qs(urlsplit(prompt["start_url"]).query)["flow"][0])
    return read_flow_token(agent.binding.keyring, token, now=int(time.time())).provider


def test_each_tool_asks_consent_at_its_own_provider_and_the_grants_stay_apart(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    agent.bedrock.auto_tool = "list_repos"
    first = agent.chat(browser, "my repos")
    [prompt] = first.of("authorization_required")
    assert (prompt["provider"], prompt["display_name"]) == ("github", "GitHub")
    assert _flow_provider(agent, first) == GITHUB_PROVIDER
    agent.consent(browser, first)
    assert agent.chat(browser, "my repos").of("tool_result")[0]["ok"] is True

    # A GitHub grant is no grant for the notes provider: its tool asks there, under its own name.
    agent.bedrock.auto_tool = "get_profile"
    second = agent.chat(browser, "who am I")
    assert second.of("authorization_required")[0]["display_name"] == "Demo Notes"
    assert _flow_provider(agent, second) == PROVIDER
    agent.consent(browser, second)
    assert agent.chat(browser, "who am I").of("tool_result")[0]["ok"] is True

    vault = agent.agentcore.vault_snapshot()
    assert sorted(key.split("|")[1] for key in vault) == sorted([PROVIDER, GITHUB_PROVIDER])
    assert all(key.startswith(ALICE.sub + "|") or ALICE.sub in key for key in vault)


def test_a_resumed_consent_is_asked_about_only_by_a_tool_of_its_provider(agent: AgentHarness) -> None:
    """The person comes back from GitHub's consent; the next turn uses a notes tool first. That tool must not
    ask GitHub's session (it is not its provider's): it asks its own, and the GitHub session stays pending."""
    browser = agent.browser(ALICE)
    agent.bedrock.auto_tool = "list_repos"
    [prompt] = agent.chat(browser, "my repos").of("authorization_required")
    flow = parse_qs(urlsplit(prompt["start_url"]).query)["flow"][0]
    [github_session] = list(agent.agentcore.custom_states)
    agent.agentcore.failed.add(github_session)  # even a declined GitHub consent is not the notes tool's business
    agent.bedrock.auto_tool = "get_profile"
    body = {"message": "who am I", "history": [], "after_consent": flow}
    response = browser.client.post("/api/chat", json=body, headers=browser.headers())
    turn = ChatTurn(response.status_code, parse_sse(response.text), response.text)
    [asked] = turn.of("authorization_required")
    assert asked["display_name"] == "Demo Notes"
    assert turn.of("authorization_declined") == []
    asked_about = [c.body.get("sessionUri") for c in agent.agentcore.calls if c.operation == "token"]
    assert github_session not in asked_about


def _settings(key_server: Any, resource: Any, providers: list[dict[str, Any]]) -> AgentSettings:
    from tests.services.conftest import agent_settings

    return agent_settings(key_server, resource, providers=providers)


def test_a_demo_provider_gets_only_the_tools_its_scopes_cover(key_server: Any, resource: Any) -> None:
    tasks = demo_provider(
        resource.base_url,
        scopes="demo-api/tasks.read",
        name="tasks",
        display_name="Demo Tasks",
        credential_provider="agentcore-ecs-sandbox-tasks",
    )
    notes = demo_provider(resource.base_url, scopes="demo-api/notes.read")
    tools = {tool.name: tool for tool in tools_for(_settings(key_server, resource, [notes, tasks]))}
    assert {name: tool.provider for name, tool in tools.items()} == {"list_notes": "notes", "list_tasks": "tasks"}
    assert "Demo Tasks" in tools["list_tasks"].description


def test_a_tool_name_two_providers_would_share_names_the_later_provider(key_server: Any, resource: Any) -> None:
    second = demo_provider(resource.base_url, name="work-notes", display_name="Work Notes", credential_provider="agentcore-ecs-work")
    tools = {tool.name: tool.provider for tool in tools_for(_settings(key_server, resource, [demo_provider(resource.base_url), second]))}
    assert tools["list_notes"] == "notes" and tools["list_notes_work_notes"] == "work-notes"
    assert len(tools) == 6


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        ([], "at least 1"),
        ([demo_provider("http://127.0.0.1:1"), demo_provider("http://127.0.0.1:2")], "each provider needs its own name"),
        (
            [demo_provider("http://127.0.0.1:1"), demo_provider("http://127.0.0.1:1", name="other")],
            "each provider needs its own credential_provider",
        ),
        ([demo_provider("http://127.0.0.1:1", scopes="")], "at least 1"),
        ([demo_provider("http://127.0.0.1:1") | {"scopes": {"bad scope": "words"}}], "expected OAuth scopes"),
        ([demo_provider("http://127.0.0.1:1") | {"scopes": {"demo-api/notes.read": " "}}], "saying what it allows"),
        ([demo_provider("http://127.0.0.1:1") | {"secret": "x"}], "Extra inputs are not permitted"),
    ],
)
def test_bad_provider_lists_stop_the_start_with_a_reason(key_server: Any, resource: Any, providers: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(key_server, resource, providers)
