"""Response headers on every answer of both services: every route from the route tables (so a route
added later is covered without editing this file), every error status, and the 500 catch-all.

Each answer must carry a CSP with `frame-ancestors 'none'` (clickjacking), `X-Frame-Options: DENY`,
`X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` (the session id in the return URL
must not leak through Referer), `Cache-Control: no-store` (per-user pages and API answers stay out of
shared and browser caches), and no `Server` header naming software or a version.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from local.alb.keys import AlbSigningKey
from tests.security.routes import concrete_routes
from tests.services.conftest import (
    ALB_ARN,
    ALICE,
    BOB,
    CLIENT_ID,
    ISSUER,
    ORIGIN,
    AgentHarness,
    BindingHarness,
    Browser,
    new_session_uri,
)

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}
STATUSES = {200, 302, 400, 401, 403, 404, 405, 410, 413, 415, 500, 503}


def assert_protected(response: httpx.Response, where: str) -> None:
    for name, value in REQUIRED.items():
        assert response.headers.get_list(name) == [value], f"{where}: {name}: {response.headers.get_list(name)}"
    [csp] = response.headers.get_list("content-security-policy")
    directives = {part.strip().split(" ", 1)[0]: part.strip() for part in csp.split(";")}
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", f"{where}: {csp}"
    assert directives.get("default-src") == "default-src 'none'", f"{where}: {csp}"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, f"{where}: {csp}"
    server = response.headers.get("server")
    assert server is None or not re.search(r"\d|uvicorn|starlette|python|fastapi", server, re.IGNORECASE), f"{where}: Server: {server}"


class Seen:
    def __init__(self) -> None:
        self.statuses: set[int] = set()
        self.routes: set[tuple[str, str, str]] = set()

    def check(self, service: str, response: httpx.Response) -> httpx.Response:
        where = f"{service} {response.request.method} {response.request.url.path} -> {response.status_code}"
        assert_protected(response, where)
        self.statuses.add(response.status_code)
        self.routes.add((service, response.request.method, response.request.url.path))
        return response


def _client(app: Any) -> TestClient:
    return TestClient(app, base_url=ORIGIN, follow_redirects=False, raise_server_exceptions=False)


@pytest.fixture
def stack(make_stack: Callable[..., AgentHarness]) -> AgentHarness:
    return make_stack()


def _as(browser: Browser) -> dict[str, str]:
    return browser.headers()


def test_every_route_and_every_error_page_carries_the_headers(stack: AgentHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = Seen()
    harness: BindingHarness = stack.binding
    alice, bob = harness.browser(ALICE), harness.browser(BOB)
    agent_client, binding_client = _client(stack.agent_app), _client(harness.app)
    chat = {"message": "Who am I?", "history": []}

    # Every route of both services, signed in and signed out, with each method it does not serve (405).
    for service, app, client in (("agent", stack.agent_app, agent_client), ("binding", harness.app, binding_client)):
        for method, path in concrete_routes(app):
            assert method != "UNKNOWN", f"{service}: a route kind this test cannot enumerate: {path}"
            body = {"json": chat} if method == "POST" else {}
            seen.check(service, client.request(method, path, headers=_as(alice), **body))
            seen.check(service, client.request(method, path, **body))
            for other in ("GET", "POST", "PUT", "DELETE", "PATCH"):
                if other != method and (other, path) not in concrete_routes(app):
                    seen.check(service, client.request(other, path, headers=_as(alice)))
        seen.check(service, client.get(f"/no-such-page-{uuid.uuid4().hex[:6]}", headers=_as(alice)))

    # The binding pages: the redirect, success, and each refusal status.
    session = new_session_uri()
    seen.check("binding", alice.client.get("/oauth2/start", params={"flow": harness.flow(ALICE, session)}, headers=_as(alice)))
    seen.check("binding", alice.client.get("/oauth2/session-binding", params={"session_id": session}, headers=_as(alice)))
    seen.check("binding", alice.client.get("/oauth2/start", params={"flow": "garbage"}, headers=_as(alice)))
    seen.check("binding", bob.client.get("/oauth2/start", params={"flow": harness.flow(ALICE, new_session_uri())}, headers=_as(bob)))
    expired = harness.flow(ALICE, new_session_uri(), now=int(time.time()) - 700)
    seen.check("binding", alice.client.get("/oauth2/start", params={"flow": expired}, headers=_as(alice)))
    # The agent's API errors.
    seen.check("agent", agent_client.post("/api/chat", content=b"{}", headers={**_as(alice), "content-type": "application/json"}))
    seen.check("agent", agent_client.post("/api/chat", content=b"x", headers={**_as(alice), "content-type": "text/plain"}))
    big = b'{"message":"' + b"x" * (300 * 1024) + b'"}'
    seen.check("agent", agent_client.post("/api/chat", content=big, headers={**_as(alice), "content-type": "application/json"}))

    # 503: AgentCore throttling after retries (binding), the ALB key endpoint down (both).
    session = new_session_uri()
    alice.client.get("/oauth2/start", params={"flow": harness.flow(ALICE, session)}, headers=_as(alice))
    harness.agentcore.failures = ["ThrottlingException"] * 5
    seen.check("binding", alice.client.get("/oauth2/session-binding", params={"session_id": session}, headers=_as(alice)))
    harness.agentcore.failures = []
    harness.key_server.status = 500
    stranger = AlbKeyRotation(harness)
    seen.check("binding", binding_client.get("/oauth2/start", params={"flow": "x"}, headers=stranger.headers()))
    seen.check("agent", agent_client.get("/api/session", headers=stranger.headers()))
    harness.key_server.status = None

    # 500: an unexpected failure inside a route still answers with the headers (the catch-all).
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(harness.app.state.runtime().ledger, "complete", broken)
    session = new_session_uri()
    alice.client.get("/oauth2/start", params={"flow": harness.flow(ALICE, session)}, headers=_as(alice))
    seen.check("binding", alice.client.get("/oauth2/session-binding", params={"session_id": session}, headers=_as(alice)))
    monkeypatch.setattr(stack.agent_app.state.runtime().slots, "take", broken)
    seen.check("agent", agent_client.post("/api/chat", json=chat, headers=_as(alice)))

    assert seen.statuses >= STATUSES, f"statuses not reached: {STATUSES - seen.statuses}"
    for service, app in (("agent", stack.agent_app), ("binding", harness.app)):
        for method, path in concrete_routes(app):
            assert (service, method, path) in seen.routes, (service, method, path)


class AlbKeyRotation:
    """A signed-in person whose ALB key is new to the services (so it must be fetched, from a failing endpoint)."""

    def __init__(self, harness: BindingHarness) -> None:
        self.harness = harness
        self.key = AlbSigningKey()

    def headers(self) -> dict[str, str]:
        token = self.key.mint(sub=ALICE.sub, signer=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID)
        return {"x-amzn-oidc-data": token, "x-amzn-oidc-identity": ALICE.sub}


def _dockerfile_cmd(service: str) -> list[str]:
    """The CMD of services/Dockerfile's first (Fargate) stage, which every Fargate service runs."""
    assert (REPO / "services" / service / "requirements.txt").is_file()
    for line in (REPO / "services" / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD ["):
            return list(json.loads(line[4:]))
    raise AssertionError("no exec-form CMD in services/Dockerfile")


@pytest.mark.parametrize("service", ["agent", "session_binding"])
def test_the_server_as_shipped_sends_no_server_header(service: str, stack: AgentHarness) -> None:
    """uvicorn with the Dockerfile's own flags, on loopback: no `Server: uvicorn`, headers intact."""
    cmd = _dockerfile_cmd(service)
    assert cmd[0] == "uvicorn", shlex.join(cmd)
    app = stack.agent_app if service == "agent" else stack.binding.app
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        server_header="--no-server-header" not in cmd,
        proxy_headers="--proxy-headers" in cmd,
        access_log="--no-access-log" not in cmd,
        lifespan="on",
        log_config=None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for path in ("/health", "/no-such-page"):
                response = client.get(path, headers={"host": "agent.example.com", "x-forwarded-proto": "https"})
                assert "server" not in response.headers, response.headers
                assert_protected(response, f"uvicorn {service} {path}")
    finally:
        server.should_exit = True
        thread.join(10)
