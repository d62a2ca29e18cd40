"""The agent service through its HTTP API: real ALB tokens, real boto3 clients against loopback
stand-ins of AgentCore Identity and the Bedrock runtime, the real session binding service for consent."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from local.bedrock import text_response, tool_use_response
from services.agent.loop import IDENTITY_BUSY
from services.agent.tokens import AgentCoreError, WorkloadTokenCache
from services.common.flow import read_flow_token
from tests.services.conftest import ALICE, BOB, ORIGIN, PROVIDER, AgentHarness, ChatTurn, demo_provider, parse_sse

WORKLOAD = "GetWorkloadAccessTokenForUserId"
OUTBOUND = "token"  # GetResourceOauth2Token is POST /identities/oauth2/token


def consented(agent: AgentHarness, user: Any = ALICE) -> Any:
    browser = agent.browser(user)
    agent.consent(browser, agent.chat(browser))
    return browser


def profile_of(turn: ChatTurn) -> dict[str, Any]:
    [result] = [r for r in turn.of("tool_result") if r["name"] == "get_profile"]
    assert result["ok"], turn.raw
    text = " ".join(m["text"] for m in turn.of("message"))
    content: list[dict[str, Any]] = json.loads(text.removeprefix("Result: "))
    profile: dict[str, Any] = content[0]["json"]
    return profile


# --- consent ------------------------------------------------------------------------------------


def test_first_request_asks_for_consent_with_a_signed_first_party_link(agent: AgentHarness) -> None:
    turn = agent.chat(agent.browser(ALICE))
    assert turn.status == 200
    assert [event for event, _ in turn.events] == ["tool_call", "authorization_required", "done"]
    [prompt] = turn.of("authorization_required")
    # One name for the provider, and its permissions in words (the raw scope strings stay with the agent).
    assert (prompt["provider"], prompt["display_name"]) == ("notes", "Demo Notes")
    assert prompt["scopes"] == ["See your profile", "Read your notes", "Create, change and delete your notes"]
    assert "demo-api/" not in json.dumps(prompt)
    start = urlsplit(prompt["start_url"])
    assert (start.scheme, start.netloc, start.path) == ("", "", "/oauth2/start")
    flow = read_flow_token(agent.binding.keyring, unquote(parse_qs(start.query)["flow"][0]), now=int(time.time()))
    assert flow.owned_by(ALICE)
    assert flow.expires_at - flow.issued_at <= 600
    # The raw AgentCore URL and session never reach the page in clear, and the model never saw them.
    assert flow.authorization_url not in turn.raw and flow.session_uri not in turn.raw
    assert len(agent.bedrock.requests) == 1
    # customState: the secret went to AgentCore only; the flow carries its digest.
    secret = agent.agentcore.custom_states[flow.session_uri]
    assert secret and secret not in turn.raw and flow.flow_id != secret


def test_after_consent_the_same_request_yields_the_tool_result(agent: AgentHarness) -> None:
    browser = consented(agent)
    turn = agent.chat(browser)
    assert [event for event, _ in turn.events] == ["tool_call", "tool_result", "message", "done"]
    assert profile_of(turn)["sub"] == ALICE.sub


def test_prompting_never_blocks(agent: AgentHarness) -> None:
    started = time.perf_counter()
    agent.chat(agent.browser(ALICE))
    assert time.perf_counter() - started < 5  # returns at once; the SDK's default would poll for minutes
    assert agent.agentcore.operation_count(OUTBOUND) == 1


def test_a_401_from_the_api_asks_for_consent_again_with_force_authentication(agent: AgentHarness) -> None:
    browser = consented(agent)
    agent.resource.revoked.update(token for _, token in agent.agentcore.vault.items())
    turn = agent.chat(browser)
    assert turn.of("authorization_required")
    forced = [c.body for c in agent.agentcore.calls if c.operation == "token" and c.body.get("forceAuthentication")]
    assert len(forced) == 1


def test_one_normalised_request_shape(agent: AgentHarness) -> None:
    browser = consented(agent)
    agent.chat(browser)
    shapes = {tuple(sorted(c.body)) for c in agent.agentcore.calls if c.operation == "token"}
    assert shapes == {
        (
            "customState",
            "forceAuthentication",
            "oauth2Flow",
            "resourceCredentialProviderName",
            "resourceOauth2ReturnUrl",
            "scopes",
            "workloadIdentityToken",
        )
    }
    scopes = {tuple(c.body["scopes"]) for c in agent.agentcore.calls if c.operation == "token"}
    assert len(scopes) == 1
    assert {c.body["resourceOauth2ReturnUrl"] for c in agent.agentcore.calls if c.operation == "token"} == {
        f"{ORIGIN}/oauth2/session-binding"
    }


# --- per-user tokens ----------------------------------------------------------------------------


def test_workload_token_is_fetched_once_per_user_and_reused(agent: AgentHarness) -> None:
    browser = consented(agent)
    for _ in range(10):
        assert profile_of(agent.chat(browser))["sub"] == ALICE.sub
    assert agent.agentcore.operation_count(WORKLOAD) == 1


def test_expired_workload_token_is_refetched_once(agent: AgentHarness) -> None:
    browser = consented(agent)
    agent.agentcore.expire_workload_tokens()
    assert profile_of(agent.chat(browser))["sub"] == ALICE.sub
    assert agent.agentcore.operation_count(WORKLOAD) == 2


def test_alices_tokens_are_never_used_for_bob_under_concurrency(make_agent: Any) -> None:
    agent = make_agent(max_chats_per_user=20)
    alice, bob = consented(agent, ALICE), consented(agent, BOB)
    # Cold cache: the burst below goes through the fetch path, where a cross-user mix-up would live.
    agent.agent_app.state.runtime().tokens.cache.clear()
    agent.agent_app.state.runtime().tokens.reused.clear()
    agent.resource.seen.clear()
    agent.agentcore.calls.clear()
    senders = [(alice, ALICE), (bob, BOB)] * 10

    async def all_at_once() -> list[tuple[Any, httpx.Response]]:
        transport = httpx.ASGITransport(app=agent.app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:

            async def one(browser: Any, user: Any) -> tuple[Any, httpx.Response]:
                return user, await client.post("/api/chat", json={"message": "Who am I?"}, headers=browser.headers())

            return list(await asyncio.gather(*(one(b, u) for b, u in senders)))

    for user, response in asyncio.run(all_at_once()):
        turn = ChatTurn(response.status_code, parse_sse(response.text), response.text)
        # The API answers as the owner of the token it received: it must be the person who asked.
        assert profile_of(turn)["sub"] == user.sub
    # One workload-token fetch per person, shared by that person's concurrent requests.
    fetched = [c.body["userId"] for c in agent.agentcore.calls if c.operation == WORKLOAD]
    assert sorted(fetched) == sorted([ALICE.sub, BOB.sub])
    # Every outbound call carried a workload token issued for one of them, and each user's own.
    # (Outbound tokens are reused once one has come back: between 1 and 10 vault reads per person.)
    owners = [agent.agentcore.workload_tokens[c.body["workloadIdentityToken"]] for c in agent.agentcore.calls if c.operation == OUTBOUND]
    assert set(owners) == {ALICE.sub, BOB.sub} and all(1 <= owners.count(sub) <= 10 for sub in (ALICE.sub, BOB.sub))


def test_workload_token_cache_is_bounded_and_expires() -> None:
    now = [0.0]
    cache = WorkloadTokenCache(max_entries=2, ttl_s=10, clock=lambda: now[0])
    fetched: list[str] = []

    def fetcher(user: str) -> Any:
        async def fetch() -> str:
            fetched.append(user)
            return f"token-{user}-{len(fetched)}"

        return fetch

    async def scenario() -> None:
        assert await cache.get("a", fetcher("a")) == "token-a-1"
        assert await cache.get("a", fetcher("a")) == "token-a-1"
        await cache.get("b", fetcher("b"))
        await cache.get("c", fetcher("c"))  # evicts a
        assert len(cache) == 2
        assert await cache.get("a", fetcher("a")) == "token-a-4"
        now[0] = 11
        assert await cache.get("a", fetcher("a")) == "token-a-5"  # expired
        cache.invalidate("a", "token-a-5")
        assert await cache.get("a", fetcher("a")) == "token-a-6"

    asyncio.run(scenario())
    assert cache.hits == 1 and cache.misses == 6


def test_concurrent_requests_of_one_user_share_one_workload_fetch() -> None:
    cache = WorkloadTokenCache(max_entries=10, ttl_s=60)
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "t"

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(cache.get("alice", fetch) for _ in range(20))))

    assert asyncio.run(scenario()) == ["t"] * 20
    assert calls == 1


def test_a_throttled_workload_token_fetch_is_shared_by_its_waiters_and_not_remembered() -> None:
    cache = WorkloadTokenCache(max_entries=10, ttl_s=60)
    fetches = 0

    async def scenario() -> tuple[list[BaseException | str], str]:
        release = asyncio.Event()

        async def throttled() -> str:
            nonlocal fetches
            fetches += 1
            await release.wait()
            raise AgentCoreError("ThrottlingException")

        async def recovered() -> str:
            nonlocal fetches
            fetches += 1
            return "token"

        waiting = [asyncio.create_task(cache.get("alice", throttled)) for _ in range(10)]
        await asyncio.sleep(0)  # every request reaches the cache and waits on the one fetch
        release.set()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        return outcomes, await cache.get("alice", recovered)

    outcomes, after = asyncio.run(scenario())
    # One call at the quota for ten requests, each told the same; the failure is not cached, the next request fetches.
    assert all(isinstance(o, AgentCoreError) and o.code == "ThrottlingException" for o in outcomes)
    assert after == "token" and fetches == 2


def test_throttling_after_consent_is_a_busy_sentence_never_a_new_consent(agent: AgentHarness) -> None:
    browser = consented(agent)
    agent.agent_app.state.runtime().tokens.reused.clear()  # the next turn reads the vault
    before = agent.agentcore.operation_count(OUTBOUND)
    agent.agentcore.failures = ["ThrottlingException"] * 2  # AGENTCORE_MAX_ATTEMPTS is 2 here: every attempt
    turn = agent.chat(browser)
    assert turn.of("error") == [{"code": "identity_unavailable", "message": IDENTITY_BUSY}]
    assert not turn.of("authorization_required") and [kind for kind, _ in turn.events][-1] == "done"
    assert agent.agentcore.operation_count(OUTBOUND) - before == 2  # one logical call, botocore's attempts, no more
    # AgentCore recovers: the stored grant is used, nothing asked.
    again = agent.chat(browser)
    assert profile_of(again)["sub"] == ALICE.sub and not again.of("authorization_required")


# --- the loop -----------------------------------------------------------------------------------


def test_converse_request_carries_tools_and_history(agent: AgentHarness) -> None:
    browser = consented(agent)
    agent.bedrock.requests.clear()
    history = [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "Hello!"}]
    agent.chat(browser, "Who am I?", history)
    first = agent.bedrock.requests[0]
    assert first["path"] == "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse"
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "user"]
    names = [t["toolSpec"]["name"] for t in first["toolConfig"]["tools"]]
    assert names == ["get_profile", "list_notes", "add_note", "list_connections", "disconnect_account"]
    add_note = first["toolConfig"]["tools"][2]["toolSpec"]["inputSchema"]["json"]
    assert add_note["required"] == ["text"] and add_note["additionalProperties"] is False


def test_tool_input_is_validated(agent: AgentHarness) -> None:
    browser = consented(agent)
    agent.bedrock.script = [tool_use_response("add_note", {"text": "", "extra": 1}), text_response("Sorry.")]
    turn = agent.chat(browser, "Add an empty note")
    [result] = turn.of("tool_result")
    assert result == {"id": "tooluse_1", "name": "add_note", "ok": False, "summary": "The tool's input was not valid."}
    assert turn.events[-1] == ("done", {})


def test_failing_tool_ends_the_turn_cleanly(make_agent: Callable[..., AgentHarness]) -> None:
    agent = make_agent(tool_timeout_s=0.5)
    browser = consented(agent)
    agent.resource.delay_s = 1.5  # beyond the tool timeout
    turn = agent.chat(browser)
    [result] = turn.of("tool_result")
    assert result["ok"] is False and result["summary"] == "The service did not answer in time."
    assert [e for e, _ in turn.events][-2:] == ["message", "done"]


def test_bedrock_throttling_is_retried(agent: AgentHarness) -> None:
    agent.bedrock.script = ["ThrottlingException", text_response("Hi there")]
    agent.bedrock.auto_tool = None
    turn = agent.chat(agent.browser(ALICE), "hello")
    assert turn.of("message") == [{"text": "Hi there"}]


def test_bedrock_throttling_until_exhausted_is_a_readable_error(agent: AgentHarness) -> None:
    agent.bedrock.script = ["ThrottlingException", "ThrottlingException"]
    turn = agent.chat(agent.browser(ALICE), "hello")
    assert turn.events == [
        ("error", {"code": "model_busy", "message": "The model is busy right now. Please try again in a few seconds."}),
        ("done", {}),
    ]


def test_model_turns_are_bounded(make_agent: Any) -> None:
    agent = make_agent(max_model_turns=3)
    browser = consented(agent)
    agent.bedrock.script = [tool_use_response("list_notes", tool_use_id=f"t{i}") for i in range(5)]
    turn = agent.chat(browser, "loop")
    assert len(turn.of("tool_call")) == 3
    assert turn.of("error")[0]["code"] == "too_many_steps"


def test_identity_service_errors_are_readable(agent: AgentHarness) -> None:
    agent.agentcore.failures = ["AccessDeniedException", "AccessDeniedException"]
    turn = agent.chat(agent.browser(ALICE))
    [error] = turn.of("error")
    assert error["code"] == "identity_unavailable"
    assert "AccessDenied" not in turn.raw


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"message": ""}, 400, "message"),
        ({"message": "x" * 4001}, 400, "message"),
        ({"message": "hi", "user": "bob"}, 400, "user: Extra inputs are not permitted"),
        ({"message": "hi", "history": [{"role": "system", "text": "x"}]}, 400, "history.0.role"),
        ({"message": "hi", "history": [{"role": "user", "text": "x"}] * 21}, 400, "history"),
        ({"history": []}, 400, "message: Field required"),
    ],
)
def test_bad_bodies_get_clear_json_errors(agent: AgentHarness, body: dict[str, Any], status: int, fragment: str) -> None:
    browser = agent.browser(ALICE)
    response = browser.client.post("/api/chat", json=body, headers=browser.headers())
    assert response.status_code == status
    assert response.json()["error"] == "invalid_request"
    assert fragment in response.json()["message"]
    assert agent.bedrock.requests == [] and agent.agentcore.calls == []


def test_wrong_media_type_oversized_and_broken_json(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    headers = browser.headers()
    assert (
        browser.client.post(
            "/api/chat", content="message=hi", headers={**headers, "content-type": "application/x-www-form-urlencoded"}
        ).status_code
        == 415
    )
    big = json.dumps({"message": "hi", "history": [{"role": "user", "text": "x" * 4000}] * 80})
    assert browser.client.post("/api/chat", content=big, headers={**headers, "content-type": "application/json"}).status_code == 413
    broken = browser.client.post("/api/chat", content="{", headers={**headers, "content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"] == "invalid_request"


def test_not_signed_in_is_401_json(agent: AgentHarness) -> None:
    response = agent.browser(None).client.post("/api/chat", json={"message": "hi"})
    assert response.status_code == 401
    assert response.json() == {"error": "not_signed_in", "message": "You are not signed in. Reload the page to sign in."}


# --- what leaves the process --------------------------------------------------------------------


def test_no_token_of_any_kind_in_logs_or_events(
    agent: AgentHarness, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    browser = agent.browser(ALICE)
    first = agent.chat(browser)
    agent.consent(browser, first)
    second = agent.chat(browser)
    secrets = [
        *agent.agentcore.workload_tokens,
        *agent.agentcore.vault.values(),
        *agent.agentcore.custom_states.values(),
        *agent.agentcore.custom_states.keys(),
        *agent.binding.sent_tokens,
        *browser.client.cookies.values(),
    ]
    assert len(secrets) >= 6
    emitted = capsys.readouterr().out
    captured = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in secrets:
        assert secret not in emitted and secret not in captured
        assert secret not in second.raw
    for secret in [*agent.agentcore.workload_tokens, *agent.agentcore.vault.values()]:
        assert secret not in first.raw


def test_ui_is_served_with_a_strict_policy(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    page = browser.client.get("/", headers=browser.headers())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert browser.client.get("/static/app.js").status_code == 200


def github_provider(*, scopes: str, **fields: object) -> dict[str, object]:
    """A PROVIDERS entry of kind github (or another kind, by `fields`), under the stand-in's credential provider."""
    entry = demo_provider(None, scopes=scopes, name="github", kind="github", display_name="GitHub", credential_provider=PROVIDER)
    entry.pop("api_url")
    return entry | fields


def test_github_provider_offers_github_tools_and_normalised_scopes(make_agent: Any) -> None:
    agent = make_agent(providers=[github_provider(scopes="repo read:user")])
    runtime = agent.agent_app.state.runtime()
    assert sorted(runtime.tools) == ["disconnect_account", "get_user", "list_connections", "list_repos"]
    assert runtime.settings.provider("github").scope_set == ("read:user", "repo")


def test_github_tool_calls_the_api_as_the_user(make_agent: Any, resource: Any) -> None:
    agent = make_agent(providers=[github_provider(scopes="read:user")], github_api_url=resource.base_url)
    agent.bedrock.auto_tool = "list_repos"
    browser = agent.browser(ALICE)
    agent.consent(browser, agent.chat(browser, "my repos"))
    turn = agent.chat(browser, "my repos")
    [result] = turn.of("tool_result")
    assert result == {"id": "tooluse_1", "name": "list_repos", "ok": True, "summary": "2 repos"}
    assert f"{ALICE.sub}/one" in turn.of("message")[0]["text"]


def test_demo_provider_needs_the_demo_api_url(key_server: Any, resource: Any) -> None:
    from tests.services.conftest import agent_settings, demo_provider

    with pytest.raises(ValueError, match="provider 'notes': api_url is required for kind demo"):
        agent_settings(key_server, resource, providers=[demo_provider(None)])


def test_an_unexpected_failure_mid_stream_still_ends_the_turn(agent: AgentHarness) -> None:
    agent.bedrock.script = [{"output": {"unexpected": True}, "stopReason": "end_turn"}]  # not a Converse answer
    turn = agent.chat(agent.browser(ALICE), "hello")
    assert turn.status == 200
    assert turn.events[-2:] == [
        ("error", {"code": "internal", "message": "Something went wrong on our side. Please try again."}),
        ("done", {}),
    ]


# --- review fixes: isolation, back-pressure, deadlines ---------------------------------------------


def slow_text(text: str, seconds: float) -> Any:
    def answer(_body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(seconds)  # the stand-in's handler thread: a model that takes its time
        return text_response(text)

    return answer


def test_cookies_an_api_sets_for_one_person_never_ride_along_for_another(agent: AgentHarness) -> None:
    alice, bob = consented(agent, ALICE), consented(agent, BOB)
    agent.resource.set_cookie = True
    agent.chat(alice)
    agent.chat(bob)
    agent.chat(alice)
    assert agent.resource.cookies_seen == []


def test_heartbeat_while_the_model_thinks(make_agent: Any) -> None:
    agent = make_agent(heartbeat_s=0.1)
    agent.bedrock.auto_tool = None
    agent.bedrock.script = [slow_text("slow", 0.5)]
    turn = agent.chat(agent.browser(ALICE), "hello")
    assert ": waiting" in turn.raw
    assert turn.of("message") == [{"text": "slow"}]


def test_a_turn_has_a_deadline(make_agent: Any) -> None:
    agent = make_agent(turn_timeout_s=0.3)
    agent.bedrock.script = [slow_text("too late", 1.5)]
    turn = agent.chat(agent.browser(ALICE), "hello")
    assert turn.events == [("error", {"code": "turn_timeout", "message": "This took too long. Please try again."}), ("done", {})]


def test_tool_answers_are_size_capped(agent: AgentHarness) -> None:
    browser = consented(agent)
    agent.resource.huge = True
    agent.bedrock.auto_tool = "list_notes"
    [result] = agent.chat(browser, "notes").of("tool_result")
    assert result == {"id": "tooluse_1", "name": "list_notes", "ok": False, "summary": "The service's answer was too large to use."}


def test_per_person_and_per_process_chat_bounds(make_agent: Any) -> None:
    agent = make_agent(max_chats_per_user=1, max_inflight_chats=2)
    agent.bedrock.auto_tool = None
    agent.bedrock.script = [slow_text("ok", 0.6) for _ in range(5)]
    alice, bob, carol_user = agent.browser(ALICE), agent.browser(BOB), agent.browser(BOB)

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=agent.app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:

            async def send(browser: Any, delay: float) -> int:
                await asyncio.sleep(delay)
                response = await client.post("/api/chat", json={"message": "hi"}, headers=browser.headers())
                return response.status_code

            return list(await asyncio.gather(send(alice, 0), send(alice, 0.2), send(bob, 0.2), send(carol_user, 0.3)))

    statuses = asyncio.run(burst())
    assert statuses[0] == 200
    assert statuses[1] == 429  # alice already has one running
    assert statuses[2] == 200
    assert statuses[3] in (429, 503)  # bob's second, or the process is full


def test_a_closed_tab_does_not_break_the_other_tabs_wait_for_the_workload_token() -> None:
    cache = WorkloadTokenCache(max_entries=10, ttl_s=60)

    async def fetch() -> str:
        await asyncio.sleep(0.1)
        return "token"

    async def scenario() -> str:
        first = asyncio.create_task(cache.get("alice", fetch))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(cache.get("alice", fetch))
        await asyncio.sleep(0.01)
        first.cancel()  # the tab that started the fetch goes away
        return await second

    assert asyncio.run(scenario()) == "token"


def test_blank_messages_are_refused(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    for body in ({"message": "   "}, {"message": "hi", "history": [{"role": "user", "text": " \n "}]}):
        response = browser.client.post("/api/chat", json=body, headers=browser.headers())
        assert response.status_code == 400 and "must not be blank" in response.json()["message"]


def test_other_providers_get_a_connection_tool_that_asks_for_consent(make_agent: Any) -> None:
    agent = make_agent(providers=[github_provider(scopes="openid email", kind="google", name="google", display_name="Google")])
    agent.bedrock.auto_tool = "connect_account"
    browser = agent.browser(ALICE)
    first = agent.chat(browser, "connect my Google account")
    assert first.of("authorization_required")[0]["display_name"] == "Google"
    agent.consent(browser, first)
    [result] = agent.chat(browser, "connect my Google account").of("tool_result")
    assert result["ok"] is True


def test_token_urls_must_be_https_outside_local(key_server: Any, resource: Any) -> None:
    from tests.services.conftest import agent_settings, demo_provider

    with pytest.raises(ValueError, match=r"PROVIDERS\[NOTES\].API_URL must be https:// outside the local profile"):
        agent_settings(
            key_server,
            resource,
            app_profile="sandbox",
            alb_keys_base_url="https://keys.example",
            oidc_issuer="https://issuer.example",
            session_binding_url="https://agent.example.com/oauth2/session-binding",
            sign_out_url="https://signin.example/logout",
            providers=[demo_provider("http://api.example")],
        )


def test_no_token_in_logs_on_error_paths(
    make_agent: Callable[..., AgentHarness], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    agent = make_agent(tool_timeout_s=0.5)
    browser = consented(agent)
    agent.chat(browser)  # success
    agent.resource.delay_s = 1.5  # beyond the tool timeout
    agent.chat(browser)  # tool failure
    agent.resource.delay_s = 0
    agent.bedrock.script = ["AccessDeniedException"]
    agent.chat(browser)  # model error
    agent.bedrock.script = [{"output": {"unexpected": True}, "stopReason": "end_turn"}]
    agent.chat(browser)  # unexpected failure
    agent.agent_app.state.runtime().tokens.cache.clear()
    agent.agent_app.state.runtime().tokens.reused.clear()
    agent.agentcore.failures = ["ThrottlingException"] * 2
    agent.chat(browser)  # identity service error
    secrets = [
        *agent.agentcore.workload_tokens,
        *agent.agentcore.vault.values(),
        *agent.agentcore.custom_states.values(),
        *agent.binding.sent_tokens,
    ]
    emitted = capsys.readouterr().out
    captured = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert '"event":"turn_failed"' in emitted and '"event":"model_error"' in emitted and '"event":"identity_error"' in emitted
    for secret in secrets:
        assert secret not in emitted and secret not in captured


def test_a_brief_503_with_retry_after_is_waited_out_once(agent: AgentHarness) -> None:
    browser = consented(agent)
    agent.resource.unavailable = ["1"]  # e.g. the demo API fetching a rotated signing key
    started = time.perf_counter()
    assert profile_of(agent.chat(browser))["sub"] == ALICE.sub
    assert time.perf_counter() - started >= 1


def test_a_long_503_is_a_readable_tool_failure_not_a_new_consent(agent: AgentHarness) -> None:
    browser = consented(agent)
    agent.resource.unavailable = ["30"]
    turn = agent.chat(browser)
    [result] = turn.of("tool_result")
    assert result["summary"] == "The service is temporarily unavailable. Try again in a few seconds."
    assert not turn.of("authorization_required")
