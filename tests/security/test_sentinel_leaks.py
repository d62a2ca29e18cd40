"""Token leakage: a distinct sentinel in every token position, one full consent flow, then a search of
everything that left the services for each sentinel.

Positions: the OAuth access token AgentCore hands out, the workload access token, the sessionUri,
the authorization URL's query, customState, the flow signing key, the AWS secret key the SDK signs
with (the services hold no provider client secret: AgentCore does), the person's email claim, and
the ALB's `x-amzn-oidc-accesstoken` header. Searched: every log line at DEBUG (stdout, stderr and
the logging records, security events included), every response status line, header and body, the
SSE stream, cookies, and what the model, AgentCore and the resource API received.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

import services.agent.tokens as agent_tokens
from services.common.alb_identity import AlbIdentity
from services.common.flow import flow_id_for
from tests.services.conftest import ALICE, ISSUER, PROVIDER, AgentHarness, parse_sse

SIGNING_KEY = "SNTL0signing0key0f3c9a7e5b1d4c2a8e6f0b"
WORKLOAD_TOKEN = "SNTL0workload0token0a7c1e"
ACCESS_TOKEN = f"at-{ALICE.sub}-SNTL0access0token0d92e"  # the resource stand-in reads the user from `at-<user>-…`
SESSION_URI = "urn:ietf:params:oauth:request_uri:SNTL0session0uri0b84f"
AUTH_QUERY = "SNTL0auth0query0c61d"
AUTHORIZATION_URL = f"https://idp.example.org/authorize?request_uri={quote(SESSION_URI, safe='')}&sntl={AUTH_QUERY}"
CUSTOM_STATE = "SNTL0custom0state02e9a"
EMAIL = "sntl0email05f7b@example.com"
OIDC_ACCESS_TOKEN = "SNTL0oidc0access0token08c3e"
AWS_SECRET = "SNTL0aws0secret0key01d6b"

# Never anywhere, except where the protocol must carry them (checked separately).
SECRETS = {
    "access token": ACCESS_TOKEN,
    "workload token": WORKLOAD_TOKEN,
    "signing key": SIGNING_KEY,
    "AWS secret key": AWS_SECRET,
    "x-amzn-oidc-accesstoken": OIDC_ACCESS_TOKEN,
}
# Not secret in the same way, but never in a log in clear, and in a response only where the protocol needs it.
FLOW_VALUES = {"sessionUri": SESSION_URI, "authorization URL query": AUTH_QUERY, "customState": CUSTOM_STATE, "email": EMAIL}

PERSON = AlbIdentity(sub=ALICE.sub, issuer=ISSUER, email=EMAIL)


def _plant(agent: AgentHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    standin = agent.agentcore

    def workload_token(body: dict[str, Any]) -> dict[str, Any]:
        with standin._lock:
            standin.workload_tokens[WORKLOAD_TOKEN] = str(body["userId"])
        return {"workloadAccessToken": WORKLOAD_TOKEN}

    def resource_token(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        with standin._lock:
            user = standin.workload_tokens.get(str(body.get("workloadIdentityToken")))
            if user is None:
                return {}, "UnauthorizedException"
            key = (user, str(body["resourceCredentialProviderName"]), tuple(body["scopes"]))
            if key in standin.vault and not body.get("forceAuthentication"):
                return {"accessToken": ACCESS_TOKEN}, None
            standin._pending[SESSION_URI] = key
            standin.sessions[SESSION_URI] = user
            standin.custom_states[SESSION_URI] = str(body.get("customState", ""))
        return {"authorizationUrl": AUTHORIZATION_URL, "sessionUri": SESSION_URI, "sessionStatus": "IN_PROGRESS"}, None

    monkeypatch.setattr(standin, "_workload_token", workload_token)
    monkeypatch.setattr(standin, "_resource_token", resource_token)
    monkeypatch.setattr(agent_tokens, "new_custom_state", lambda: (CUSTOM_STATE, flow_id_for(CUSTOM_STATE)))


def test_no_secret_leaves_through_logs_pages_headers_or_the_model(
    make_stack: Callable[..., AgentHarness],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)  # read when the services build their clients
    agent = make_stack(signing_keys=[{"kid": "k9", "key": SIGNING_KEY}], log_level="DEBUG")
    _plant(agent, monkeypatch)
    browser = agent.browser(PERSON)
    stranger = agent.browser(PERSON)  # the same person in another browser: refused, with an event
    responses: list[Any] = []

    def headers() -> dict[str, str]:
        return {**browser.headers(), "x-amzn-oidc-accesstoken": OIDC_ACCESS_TOKEN}

    def chat() -> list[tuple[str, dict[str, Any]]]:
        response = browser.client.post("/api/chat", json={"message": "Who am I?", "history": []}, headers=headers())
        responses.append(response)
        assert response.status_code == 200
        return parse_sse(response.text)

    # 1. The chat needs consent: a first-party start link.
    [prompt] = [data for kind, data in chat() if kind == "authorization_required"]
    # 2. /oauth2/start: the only place the authorization URL (and the sessionUri in it) is handed out.
    started = browser.client.get(prompt["start_url"], headers=headers())
    responses.append(started)
    assert started.status_code == 302 and started.headers["location"] == AUTHORIZATION_URL
    # 3. AgentCore's redirect back, carrying customState as `state`; then a reload.
    for _ in range(2):
        back = browser.client.get("/oauth2/session-binding", params={"session_id": SESSION_URI, "state": CUSTOM_STATE}, headers=headers())
        responses.append(back)
        assert back.status_code == 200, back.text
    # A refusal after it: the same redirect opened in another browser (which, before completion, would
    # have cancelled the session for everyone).
    refused = stranger.client.get("/oauth2/session-binding", params={"session_id": SESSION_URI, "state": CUSTOM_STATE}, headers=headers())
    responses.append(refused)
    assert refused.status_code == 410
    # 4. The same chat now uses the token against the resource API.
    events = chat()
    assert [data["ok"] for kind, data in events if kind == "tool_result"] == [True]
    # A signed-out request and an invalid one, for their error pages.
    responses.append(agent.browser(None).client.post("/api/chat", json={"message": "hi"}))
    responses.append(browser.client.post("/api/chat", json={"message": ""}, headers=headers()))

    captured = capsys.readouterr()
    records = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.__dict__}" for r in caplog.records)
    logs = {"stdout": captured.out, "stderr": captured.err, "log records": records}
    assert '"event":"binding_completed"' in captured.out and '"reason":"session_already_completed"' in captured.out

    pages = {
        f"response {i} ({r.request.method} {r.request.url.path} {r.status_code})": f"{r.status_code}\n"
        + "\n".join(f"{k}: {v}" for k, v in r.headers.multi_items())
        + "\n"
        + r.text
        for i, r in enumerate(responses)
    }
    cookies = {"cookie jar": "\n".join(f"{c.name}={c.value}" for c in [*browser.client.cookies.jar, *stranger.client.cookies.jar])}
    model = {"model requests": repr(agent.bedrock.requests)}
    resource_calls = [token for _, token in agent.resource.seen]
    agentcore_calls = {"AgentCore calls": repr([(c.body, c.headers) for c in agent.agentcore.calls])}

    # Secrets: nowhere, except the access token in the Authorization header the resource API received.
    for name, value in SECRETS.items():
        for place, text in {**logs, **pages, **cookies, **model}.items():
            assert value not in text, f"{name} in {place}"
    assert ACCESS_TOKEN in resource_calls  # the one place it must go
    for name in ("access token", "signing key", "AWS secret key", "x-amzn-oidc-accesstoken"):
        assert SECRETS[name] not in agentcore_calls["AgentCore calls"], f"{name} sent to AgentCore"

    # Flow values: never in a log or cookie in clear; in responses only where the protocol puts them.
    for name, value in FLOW_VALUES.items():
        for place, text in {**logs, **cookies, **model}.items():
            assert value not in text, f"{name} in {place}"
        for place, text in pages.items():
            allowed = place.startswith(f"response {responses.index(started)} ") and name in {"sessionUri", "authorization URL query"}
            if allowed:
                # The 302's Location, and nothing else in that answer.
                quoted = quote(value, safe="")
                assert text.count(value) + (text.count(quoted) if quoted != value else 0) == 1, f"{name} in {place}"
                continue
            assert value not in text and quote(value, safe="") not in text, f"{name} in {place}"
        assert value not in repr(resource_calls), f"{name} sent to the resource API"
    assert EMAIL not in agentcore_calls["AgentCore calls"]
    assert PROVIDER in captured.out  # the logs were there to search: the started event names the provider
