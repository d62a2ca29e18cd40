"""Connected accounts through the agent and the binding service together, with the registry on the local
DynamoDB-compatible server: what /api/connections shows, connect, disconnect, and the guarantee that a
disconnected account's old grant is never used again (the next use asks anew with forceAuthentication)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.bedrock.responses import text_response, tool_use_response
from tests.services.conftest import ALICE, BOB, AgentHarness, Browser, ChatTurn, demo_provider, parse_sse
from tests.support.browsing import LiveServer


def _connections(agent: AgentHarness, browser: Browser) -> dict[str, dict[str, Any]]:
    response = browser.client.get("/api/connections", headers=browser.headers())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return {entry["name"]: entry for entry in response.json()["connections"]}


def _post(browser: Browser, path: str, body: Any = None, **kwargs: Any) -> Any:
    headers = browser.headers() | kwargs.pop("headers", {})
    return browser.client.post(path, json={} if body is None else body, headers=headers, **kwargs)


def _forced(agent: AgentHarness) -> list[bool]:
    return [bool(c.body.get("forceAuthentication")) for c in agent.agentcore.calls if c.operation == "token" and "customState" in c.body]


def _land(agent: AgentHarness, browser: Browser, turn: ChatTurn) -> Any:
    """Follow a consent card through the start link and AgentCore's redirect back; the binding's answer."""
    [prompt] = turn.of("authorization_required")
    started = browser.client.get(prompt["start_url"], headers=browser.headers())
    session = started.headers["location"].split("request_uri=", 1)[1]
    params = {"session_id": session, "state": agent.agentcore.custom_states[session]}
    return browser.client.get("/oauth2/session-binding", params=params, headers=browser.headers())


def _connected(agent: AgentHarness, browser: Browser) -> None:
    agent.consent(browser, agent.chat(browser))
    assert agent.chat(browser).of("tool_result")[0]["ok"] is True


def test_a_completed_consent_and_each_use_show_on_the_page(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    assert _connections(agent, browser)["notes"]["status"] == "not_connected"
    _connected(agent, browser)
    notes = _connections(agent, browser)["notes"]
    assert notes["status"] == "connected" and notes["display_name"] == "Demo Notes"
    assert notes["permissions"] == ["See your profile", "Read your notes", "Create, change and delete your notes"]
    assert notes["connected_at"] and notes["last_used_at"] and notes["disconnected_at"] is None
    assert "token" not in str(notes).lower()
    assert _connections(agent, agent.browser(BOB))["notes"]["status"] == "not_connected", "bob sees none of alice's"


def test_after_a_disconnect_the_old_grant_is_never_used_and_consent_is_asked_anew(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    _connected(agent, browser)
    used_before = len(agent.resource.seen)
    answer = _post(browser, "/api/connections/notes/disconnect")
    assert answer.status_code == 200 and answer.json()["status"] == "disconnected"
    assert answer.json()["revocation"] == "not_offered" and "keeps the permission it gave until it expires" in answer.json()["message"]
    assert answer.headers["cache-control"] == "no-store"
    assert _connections(agent, browser)["notes"]["status"] == "disconnected"

    # The vault still holds the grant (the demo provider offers no token-only revocation); it is not used.
    again = agent.chat(browser)
    assert [event for event, _ in again.events] == ["tool_call", "authorization_required", "done"]
    assert _forced(agent)[-1] is True
    assert len(agent.resource.seen) == used_before, "no request with the old token"

    agent.consent(browser, again)
    assert _connections(agent, browser)["notes"]["status"] == "connected"
    assert agent.chat(browser).of("tool_result")[0]["ok"] is True


def test_a_consent_started_before_the_disconnect_does_not_undo_it(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    _connected(agent, browser)
    _post(browser, "/api/connections/notes/disconnect")
    stale = agent.chat(browser)  # asks anew (forced); the person keeps that link for later
    _post(browser, "/api/connections/notes/disconnect")  # a second disconnect, after that link was issued
    back = _land(agent, browser, stale)  # completes at AgentCore, but the flow predates the last disconnect
    assert "This permission will not be used" in back.text
    assert _connections(agent, browser)["notes"]["status"] == "disconnected"
    assert agent.chat(browser).of("authorization_required"), "still asks before using the account"


def test_coming_back_from_a_consent_started_before_the_disconnect_uses_nothing(agent: AgentHarness) -> None:
    """The person clicks an old consent card after disconnecting: AgentCore completes it, the page says the
    agent will not use it, and the request the page resends with `after_consent` asks anew instead of using
    the grant that session put in the vault."""
    browser = agent.browser(ALICE)
    stale = agent.chat(browser)  # a consent card, shown while the account was not yet disconnected
    [prompt] = stale.of("authorization_required")
    _post(browser, "/api/connections/notes/disconnect")
    back = _land(agent, browser, stale)
    assert back.status_code == 200 and "This permission will not be used" in back.text
    assert _connections(agent, browser)["notes"]["status"] == "disconnected"

    used_before = len(agent.resource.seen)
    flow = parse_qs(urlsplit(prompt["start_url"]).query)["flow"][0]
    body = {"message": "Who am I?", "history": [], "after_consent": flow}
    resumed = browser.client.post("/api/chat", json=body, headers=browser.headers())
    turn = ChatTurn(resumed.status_code, parse_sse(resumed.text), resumed.text)
    assert [event for event, _ in turn.events] == ["tool_call", "authorization_required", "done"]
    assert len(agent.resource.seen) == used_before, "the grant of the stale session was not used"


def test_a_disconnect_while_the_token_is_fetched_stops_the_use(agent: AgentHarness) -> None:
    """The registry is read, then AgentCore is slow; the person disconnects on another task meanwhile. The
    use is recorded with a conditional write right before the token goes out: it is refused, and consent is
    asked anew."""
    browser = agent.browser(ALICE)
    _connected(agent, browser)
    used_before = len(agent.resource.seen)
    agent.agent_app.state.runtime().tokens.reused.clear()  # the token is fetched from the vault this time
    agent.agentcore.delay_s = 0.6
    turns: list[ChatTurn] = []
    chatting = threading.Thread(target=lambda: turns.append(agent.chat(agent.browser(ALICE))))
    chatting.start()
    time.sleep(0.3)  # the turn has read the registry and waits for AgentCore
    _post(agent.browser(ALICE), "/api/connections/notes/disconnect")
    chatting.join(timeout=20)
    [turn] = turns
    assert [event for event, _ in turn.events] == ["tool_call", "authorization_required", "done"]
    assert len(agent.resource.seen) == used_before


def test_connect_asks_for_consent_then_reports_connected(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    first = _post(browser, "/api/connections/notes/connect")
    assert first.status_code == 200 and first.json()["status"] == "consent_required"
    assert first.json()["start_url"].startswith("/oauth2/start?flow=")
    agent.consent(browser, ChatTurn(200, [("authorization_required", first.json())], ""))
    second = _post(browser, "/api/connections/notes/connect")
    assert second.json() == {"status": "connected", "display_name": "Demo Notes"}


BAD_REQUESTS = {
    "unknown provider": ("/api/connections/nope/connect", {}, None, (404, "unknown_provider")),
    "a body that is not {}": ("/api/connections/notes/disconnect", {"all": True}, None, (400, "invalid_request")),
    "a form post": ("/api/connections/notes/disconnect", None, "application/x-www-form-urlencoded", (415, "unsupported_media_type")),
}


@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_requests_get_a_clear_answer_and_change_nothing(
    agent: AgentHarness, case: tuple[str, Any, str | None, tuple[int, str]]
) -> None:
    path, body, media_type, expected = case
    browser = agent.browser(ALICE)
    if media_type:
        response = browser.client.post(path, content=b"x=1", headers=browser.headers() | {"content-type": media_type})
    else:
        response = _post(browser, path, body)
    assert (response.status_code, response.json()["error"]) == expected
    assert response.json()["message"]
    assert _connections(agent, browser)["notes"]["status"] == "not_connected"


def test_without_the_registry_nothing_is_used_and_people_are_told(make_agent: Any) -> None:
    agent = make_agent(connections_table="no-such-table")
    browser = agent.browser(ALICE)
    assert browser.client.get("/api/connections", headers=browser.headers()).json()["error"] == "connections_unavailable"
    turn = agent.chat(browser)
    [error] = turn.of("error")
    assert error["code"] == "connections_unavailable" and "try again" in error["message"]
    assert not turn.of("authorization_required") and not agent.agentcore.calls


@pytest.fixture
def revoker() -> Iterator[tuple[str, list[dict[str, str]]]]:
    received: list[dict[str, str]] = []

    async def revoke(request: Request) -> Response:
        received.append({k: v[0] for k, v in parse_qs((await request.body()).decode()).items()})
        return JSONResponse({})

    with LiveServer(Starlette(routes=[Route("/revoke", revoke, methods=["POST"])])) as server:
        yield server.base_url + "/revoke", received


def test_a_provider_that_revokes_with_the_token_alone_is_asked_to(
    make_agent: Any, resource: Any, revoker: tuple[str, list[dict[str, str]]]
) -> None:
    url, received = revoker
    google = demo_provider(None, scopes="openid email", name="google", kind="google", display_name="Google", revocation_url=url)
    agent = make_agent(providers=[google])
    agent.bedrock.auto_tool = "connect_account"
    browser = agent.browser(ALICE)
    agent.consent(browser, agent.chat(browser, "connect google"))
    answer = _post(browser, "/api/connections/google/disconnect").json()
    assert answer["revocation"] == "revoked" and "Google has also withdrawn" in answer["message"]
    [form] = received
    assert set(form) == {"token"} and form["token"].startswith("at-")


def test_the_chat_lists_the_accounts_and_a_disconnect_it_is_asked_for_waits_for_the_person(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    _connected(agent, browser)
    agent.bedrock.script = [tool_use_response("list_connections"), text_response("Here they are.")]
    [listed] = agent.chat(browser, "what accounts are connected?").of("tool_result")
    assert listed == {"id": "tooluse_1", "name": "list_connections", "ok": True, "summary": "1 account"}

    agent.bedrock.script = [tool_use_response("disconnect_account", {"account": "Demo Notes"}), text_response("Please confirm.")]
    turn = agent.chat(browser, "disconnect my notes account")
    assert turn.of("disconnect_requested") == [{"provider": "notes", "display_name": "Demo Notes"}]
    assert _connections(agent, browser)["notes"]["status"] == "connected", "a model's tool call is no confirmation"

    agent.bedrock.script = [tool_use_response("disconnect_account", {"account": "github"}), text_response("No such account.")]
    [unknown] = agent.chat(browser, "disconnect github").of("tool_result")
    assert unknown["ok"] is False and "The accounts are: Demo Notes." in unknown["summary"]
