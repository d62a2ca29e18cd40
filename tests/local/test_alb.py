"""The local ALB against the real sign-in issuer (oidc-provider) and an upstream that echoes what it got.

What the services rely on: identity headers only from the ALB (client-supplied ones removed), an
`x-amzn-oidc-data` the production verifier accepts, sign-in bound to the browser that started it,
listener rules from the shared route table, and responses streamed through.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from cdk_app.routes import Target
from local.alb.keys import AlbSigningKey, KeyServer
from local.alb.proxy import SESSION_COOKIE, AlbConfig, AlbState, create_alb_app
from local.idp import ALICE, OIDC_PROVIDER_DIR, SIGN_IN_TITLE, ClientSpec, IdpProcess, IssuerSpec, idp_config
from services.common.alb_identity import AlbIdentityVerifier, AlbKeyStore, verify_alb_identity
from tests.support.browsing import LiveServer
from tests.support.person import ScriptedPerson

SIGNER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/local-test/0123456789abcdef"
CLIENT_ID, CLIENT_SECRET = "alb-test", "alb-test-secret-value"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _echo(request: Request) -> Response:
    if request.url.path == "/api/stream":

        async def ticks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"data: {i}\n\n".encode()
                await asyncio.sleep(0.05)

        return StreamingResponse(ticks(), media_type="text/event-stream")
    body = await request.body()
    return JSONResponse(
        {
            "path": request.url.path,
            "query": request.url.query,
            "method": request.method,
            "body": body.decode(),
            "headers": dict(request.headers),
        },
        headers={"connection": "keep-alive", "x-upstream": "yes"},
    )


@dataclass
class Alb:
    url: str
    issuer: str
    state: AlbState
    key: AlbSigningKey
    keys: KeyServer

    def person(self) -> ScriptedPerson:
        return ScriptedPerson(ALICE.username, ALICE.password)

    def signed_in(self) -> ScriptedPerson:
        person = self.person()
        login = person.follow(self.url + "/")
        assert SIGN_IN_TITLE in login.text
        page = person.sign_in_through(login)
        assert page.status_code == 200, page.text
        return person


@pytest.fixture(scope="module")
def alb() -> Iterator[Alb]:
    if not OIDC_PROVIDER_DIR.is_dir():
        if os.environ.get("REQUIRE_NODE_IDP"):
            pytest.fail("node_modules/oidc-provider is missing (make install runs npm ci)")
        pytest.skip("node_modules/oidc-provider is missing (npm ci)")
    echo_app = Starlette(routes=[Route("/{path:path}", _echo, methods=["GET", "POST", "HEAD"])])
    alb_port, idp_port = _free_port(), _free_port()
    public = f"http://127.0.0.1:{alb_port}"
    client = ClientSpec(CLIENT_ID, CLIENT_SECRET, (public + "/oauth2/idpresponse",))
    spec = IssuerSpec(name="sign-in", kind="sign-in", host="127.0.0.1", port=idp_port, clients=(client,), title=SIGN_IN_TITLE)
    key = AlbSigningKey()
    with LiveServer(echo_app) as echo, IdpProcess(idp_config(spec)) as _idp, KeyServer([key]) as keys:
        state = AlbState()
        config = AlbConfig(
            public_url=public,
            upstreams={Target.AGENT: echo.base_url, Target.SESSION_BINDING: echo.base_url + "/binding"},
            issuer=spec.issuer,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            signer_arn=SIGNER,
        )
        server = LiveServer(create_alb_app(config, key, state=state), lifespan="on", port=alb_port, proxy_headers=False)
        with server:
            yield Alb(public, spec.issuer, state, key, keys)


def test_a_new_browser_is_sent_to_sign_in_and_back_to_the_page_it_asked_for(alb: Alb) -> None:
    person = alb.person()
    sign_ins = alb.state.sign_ins
    first = person.send("GET", alb.url + "/some/page?x=1")
    assert first.status_code == 302 and first.headers["location"].startswith(alb.issuer + "/oauth2/authorize?")
    assert first.headers["cache-control"] == "no-store"
    page = person.sign_in_through(person.follow(first.headers["location"]))
    assert page.status_code == 200
    assert page.json()["path"] == "/some/page" and page.json()["query"] == "x=1"
    assert [c.name for c in person.cookies.jar if c.name == SESSION_COOKIE] == [SESSION_COOKIE]
    assert alb.state.sign_ins == sign_ins + 1


def test_forwarded_identity_is_the_albs_and_verifies_with_the_production_verifier(alb: Alb) -> None:
    person = alb.signed_in()
    forged = {"x-amzn-oidc-data": "forged", "x-amzn-oidc-identity": "someone-else", "X-Amzn-Oidc-Accesstoken": "stolen"}
    seen: dict[str, Any] = person.send("GET", alb.url + "/", headers=forged).json()["headers"]
    assert seen["x-amzn-oidc-identity"] == ALICE.sign_in_sub
    assert seen["x-amzn-oidc-accesstoken"] != "stolen" and seen["x-amzn-oidc-data"] != "forged"
    assert SESSION_COOKIE in seen["cookie"], "the ALB passes its session cookie on, as the real one does"

    verifier = AlbIdentityVerifier(alb_arn=SIGNER, issuer=alb.issuer, client_id=CLIENT_ID, keys=AlbKeyStore(alb.keys.base_url, timeout_s=2))
    identity = asyncio.run(verify_alb_identity(Headers(seen), verifier))
    assert identity.sub == ALICE.sign_in_sub
    header = json.loads(_b64(seen["x-amzn-oidc-data"].split(".")[0]))
    assert header["alg"] == "ES256" and header["signer"] == SIGNER and header["client"] == CLIENT_ID and header["iss"] == alb.issuer
    segments = seen["x-amzn-oidc-data"].split(".")
    assert all(len(segment) % 4 == 0 for segment in segments) and segments[2].endswith("="), "padded base64url"


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_identity_headers_are_stripped_on_routes_without_sign_in(alb: Alb) -> None:
    seen = httpx.get(alb.url + "/health", headers={"x-amzn-oidc-data": "forged", "x-amzn-oidc-identity": "x"}).json()["headers"]
    assert not [name for name in seen if name.startswith("x-amzn-oidc-")]


def test_api_routes_answer_401_instead_of_redirecting(alb: Alb) -> None:
    response = httpx.post(alb.url + "/api/chat", json={"message": "hi"})
    assert response.status_code == 401 and "location" not in response.headers


def test_listener_rules_pick_the_target(alb: Alb) -> None:
    person = alb.signed_in()
    assert person.send("GET", alb.url + "/oauth2/start?flow=f").json()["path"] == "/binding/oauth2/start"
    assert person.send("GET", alb.url + "/oauth2/start/").json()["path"] == "/oauth2/start/"  # exact paths only
    assert person.send("POST", alb.url + "/api/chat", json={"a": 1}).json()["body"] == '{"a":1}'


def test_a_sign_in_finished_in_another_browser_is_refused(alb: Alb) -> None:
    """The ALB's own login CSRF guard: the callback must come back to the browser that was sent out."""
    victim, attacker = alb.person(), alb.person()
    start = attacker.send("GET", alb.url + "/")
    login = attacker.follow(start.headers["location"])
    held = attacker.sign_in_through(login, stop_before=alb.url + "/oauth2/idpresponse")
    callback = held.headers["location"]
    refused = victim.send("GET", callback if callback.startswith("http") else alb.url + callback)
    assert refused.status_code == 401 and "another browser" in refused.text
    assert victim.send("GET", alb.url + "/").status_code == 302, "the victim is not signed in as the attacker"
    # The state was used up by the refused attempt: the attacker cannot finish with it either.
    assert attacker.send("GET", callback).status_code == 401


def test_unknown_state_and_missing_code_are_refused(alb: Alb) -> None:
    assert httpx.get(alb.url + "/oauth2/idpresponse?state=nope&code=x").status_code == 401
    assert httpx.get(alb.url + "/oauth2/idpresponse").status_code == 401


def test_trace_header_is_added_kept_or_replaced(alb: Alb) -> None:
    person = alb.signed_in()
    fresh = person.send("GET", alb.url + "/").json()["headers"]["x-amzn-trace-id"]
    assert fresh.startswith("Root=1-") and len(fresh) == len("Root=1-") + 8 + 1 + 24
    valid = "Root=1-5759e988-bd862e3fe1be46a994272793"
    assert person.send("GET", alb.url + "/", headers={"x-amzn-trace-id": valid}).json()["headers"]["x-amzn-trace-id"] == valid
    bad = person.send("GET", alb.url + "/", headers={"x-amzn-trace-id": "Root=evil;<script>"}).json()["headers"]["x-amzn-trace-id"]
    assert bad.startswith("Root=1-") and "evil" not in bad


def test_forwarding_headers_are_the_albs_own(alb: Alb) -> None:
    person = alb.signed_in()
    seen = person.send("GET", alb.url + "/", headers={"x-forwarded-for": "6.6.6.6", "x-forwarded-proto": "https"}).json()["headers"]
    assert seen["x-forwarded-for"] == "6.6.6.6, 127.0.0.1", "appended: the last address is the one the ALB saw"
    assert seen["x-forwarded-proto"] == "http" and seen["x-forwarded-port"] == alb.url.rsplit(":", 1)[1]


def test_responses_stream_through_and_hop_by_hop_headers_are_dropped(alb: Alb) -> None:
    person = alb.signed_in()
    with_headers = person.send("GET", alb.url + "/")
    assert with_headers.headers["x-upstream"] == "yes"
    assert "keep-alive" not in with_headers.headers.get("connection", ""), "the target's Connection header stays behind"
    # The first event arrives before the target has finished (it pauses 50 ms between events).
    streamed = person.send("GET", alb.url + "/api/stream", stream=True)
    try:
        started = time.monotonic()
        chunks = streamed.iter_raw()
        first = next(chunks)
        first_after = time.monotonic() - started
        rest = b"".join(chunks)
    finally:
        streamed.close()
    assert streamed.status_code == 200 and (first + rest) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert first.startswith(b"data: 0") and first_after < 0.1


def test_another_host_name_is_sent_to_the_public_origin(alb: Alb) -> None:
    port = alb.url.rsplit(":", 1)[1]
    response = httpx.get(f"http://localhost:{port}/some/page?x=1")
    assert response.status_code == 302 and response.headers["location"] == alb.url + "/some/page?x=1"


def test_rules_match_and_targets_get_the_path_as_sent(alb: Alb) -> None:
    person = alb.signed_in()
    encoded = person.send("GET", alb.url + "/oauth2%2Fstart?flow=f").json()
    assert encoded["path"] == "/oauth2/start", "an encoded slash is not the binding path: the agent's rule took it"
    assert person.send("GET", alb.url + "/oauth2/start?flow=f").json()["path"] == "/binding/oauth2/start"
    assert person.send("GET", alb.url + "/a%20b").json()["path"] == "/a b"


def test_a_provider_error_at_the_callback_signs_no_one_in(alb: Alb) -> None:
    person = alb.person()
    first = person.send("GET", alb.url + "/")
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(first.headers["location"]).query))["state"]
    refused = person.send("GET", f"{alb.url}/oauth2/idpresponse?error=access_denied&state={state}")
    assert refused.status_code == 401 and "did not sign you in" in refused.text
    assert person.send("GET", alb.url + "/").status_code == 302


def test_a_target_that_is_down_gets_502(alb: Alb) -> None:
    port = _free_port()
    config = AlbConfig(
        public_url=f"http://127.0.0.1:{port}",
        upstreams={Target.AGENT: f"http://127.0.0.1:{_free_port()}", Target.SESSION_BINDING: "http://127.0.0.1:9"},
        issuer=alb.issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        signer_arn=SIGNER,
    )
    with LiveServer(create_alb_app(config, alb.key), lifespan="on", port=port) as down:
        response = httpx.get(down.base_url + "/health")
    assert response.status_code == 502 and "Bad Gateway" in response.text


def test_an_idle_target_connection_is_closed_by_the_listener_after_its_idle_timeout() -> None:
    """Like the deployed listener, the local ALB drops a target connection idle for its idle timeout, and reuses one
    used more recently. (The targets keep theirs open longer, TARGET_KEEP_ALIVE_S, so the ALB always closes first.)"""

    async def peer(request: Request) -> Response:
        client = request.scope["client"]
        return JSONResponse({"port": client[1]})

    upstream = Starlette(routes=[Route("/health", peer)])
    port = _free_port()
    with LiveServer(upstream, proxy_headers=False) as target:
        config = AlbConfig(
            public_url=f"http://127.0.0.1:{port}",
            upstreams={Target.AGENT: target.base_url, Target.SESSION_BINDING: target.base_url},
            issuer="http://127.0.0.1:1/unused",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            signer_arn=SIGNER,
            upstream_timeout_s=0.3,
        )
        listener = LiveServer(create_alb_app(config, AlbSigningKey()), lifespan="on", port=port, proxy_headers=False)
        with listener, httpx.Client(base_url=listener.base_url, trust_env=False) as client:
            first, again = (client.get("/health").json()["port"] for _ in range(2))
            time.sleep(0.6)
            later = client.get("/health").json()["port"]
    assert first == again, "a connection used a moment ago is reused"
    assert later != first, "a connection idle past the listener's idle timeout is not"
