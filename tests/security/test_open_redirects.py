"""Open redirects: the corpus in `redirect_corpus.py` sent to every route of both services, in every
place a redirect target could come from, by a signed-in person (a real ES256 ALB token).

Places: the parameters the endpoints read (`flow`, `session_id`, `state`, `code`); every parameter
name a careless implementation might honour (`next`, `redirect_uri`, `return_to`, `url`, …) next to
otherwise valid requests; the headers URLs are built from (`Host`, `X-Forwarded-Host`,
`X-Forwarded-Proto`, `Forwarded`, `Referer`, …), on each route as written and with a trailing slash
(where a framework's slash redirect would answer); and the path itself.

Each answer must: carry no `Location` that leaves the origin, except the authorization URL of the
valid signed flow on `/oauth2/start`; not be a 5xx. AgentCore must see no call at all.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest

from services.common.flow import new_custom_state
from tests.security.asgi import Answer, AsgiClient, HeaderItems, encode_query
from tests.security.redirect_corpus import ORIGIN_HOST, leaves_origin, payloads
from tests.security.routes import concrete_routes
from tests.services.conftest import ALB_ARN, ALICE, AUTHORIZE_URL, CLIENT_ID, ISSUER, ORIGIN, AgentHarness, new_session_uri

CORPUS = payloads()

# Names a careless implementation might read a redirect target from.
DECOY_PARAMETERS = (
    "next",
    "return",
    "return_to",
    "returnTo",
    "returnUrl",
    "return_url",
    "redirect",
    "redirect_uri",
    "redirect_url",
    "redirectTo",
    "url",
    "continue",
    "dest",
    "destination",
    "goto",
    "target",
    "callback",
    "success_url",
    "error_uri",
    "forward",
    "r",
    "u",
)
# Headers a framework or a proxy-aware app might build an absolute URL from.
URL_HEADERS = (
    "host",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-prefix",
    "x-forwarded-port",
    "forwarded",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "referer",
    "origin",
)


@dataclass
class Tally:
    requests: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, endpoint: str, position: str, payload: str, answer: Answer, *, allowed_location: str | None = None) -> None:
        self.requests += 1
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
        where = f"{endpoint} [{position}] {payload[:80]!r}"
        if answer.status >= 500:
            self.failures.append(f"{where}: {answer.status}")
        for location in answer.header("location"):
            if location != allowed_location and leaves_origin(location, ORIGIN):
                self.failures.append(f"{where}: {answer.status} Location: {location[:120]!r}")


def _signed_in_headers(agent: AgentHarness) -> list[tuple[str, str | bytes]]:
    # One token for the whole run (valid 10 minutes): minting per request would only measure ECDSA.
    token = agent.binding.alb_key.mint(sub=ALICE.sub, signer=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID, email=ALICE.email, lifetime_s=600)
    return [("x-amzn-oidc-data", token), ("x-amzn-oidc-identity", ALICE.sub)]


def _url_headers(payload: str) -> list[tuple[str, str | bytes]]:
    return [(name, payload.encode("utf-8")) for name in URL_HEADERS]


def _decoys(payload: str) -> list[tuple[str, str]]:
    return [(name, payload) for name in DECOY_PARAMETERS]


def _agent_routes(agent: AgentHarness) -> list[tuple[str, str, bytes, list[tuple[str, str | bytes]]]]:
    """(method, path, body, extra headers) for every route of the agent, from its route table."""
    routes: list[tuple[str, str, bytes, list[tuple[str, str | bytes]]]] = []
    for method, path in concrete_routes(agent.agent_app):
        if method == "POST":
            # A body the API refuses (no message): the request is invalid, so no model and no AgentCore call.
            routes.append((method, path, b'{"history":[]}', [("content-type", "application/json")]))
        else:
            routes.append((method, path, b"", []))
    return routes


async def _run(agent: AgentHarness, corpus: Iterable[str]) -> Tally:
    tally = Tally()
    who = _signed_in_headers(agent)
    binding, harness = agent.binding.app, agent.binding

    # A browser that started and completed one flow (its bound cookie makes reloads answer without a call),
    # and one with a flow started but not completed (its binding cookie makes `state` the deciding check).
    done = AsgiClient(binding, ORIGIN_HOST)
    done_session = new_session_uri()
    started = await done.request("GET", "/oauth2/start", query=encode_query([("flow", harness.flow(ALICE, done_session))]), headers=who)
    assert started.status == 302 and started.header("location") == [AUTHORIZE_URL]
    done_query = encode_query([("session_id", done_session), ("state", harness.custom_states[done_session])])
    completed = await done.request("GET", "/oauth2/session-binding", query=done_query, headers=who)
    assert completed.status == 200, completed.text
    pending = AsgiClient(binding, ORIGIN_HOST)
    _, flow_id = new_custom_state()
    flow = harness.flow(ALICE, new_session_uri(), flow_id=flow_id)
    setup_calls = len(agent.agentcore.calls)
    assert setup_calls == 1

    fresh = AsgiClient(binding, ORIGIN_HOST)  # a new browser per start: each accepted start sets a cookie
    agent_client = AsgiClient(agent.agent_app, ORIGIN_HOST)
    agent_routes = _agent_routes(agent)

    for payload in corpus:
        # /oauth2/start: the payload as the flow; then a valid flow with the payload everywhere else.
        answer = await fresh.request("GET", "/oauth2/start", query=encode_query([("flow", payload)]), headers=who)
        tally.check("binding GET /oauth2/start", "flow", payload, answer)
        query = encode_query([("flow", flow), *_decoys(payload)])
        answer = await fresh.request("GET", "/oauth2/start", query=query, headers=who)
        tally.check("binding GET /oauth2/start", "decoy parameters", payload, answer, allowed_location=AUTHORIZE_URL)
        if answer.status != 302:
            tally.failures.append(f"/oauth2/start [decoy parameters] {payload[:80]!r}: valid flow refused ({answer.status})")
        answer = await fresh.request("GET", "/oauth2/start", query=encode_query([("flow", flow)]), headers=[*who, *_url_headers(payload)])
        tally.check("binding GET /oauth2/start", "headers", payload, answer, allowed_location=AUTHORIZE_URL)
        answer = await fresh.request("GET", "/oauth2/start/", query=encode_query([("flow", flow)]), headers=[*who, *_url_headers(payload)])
        tally.check("binding GET /oauth2/start", "headers, trailing slash", payload, answer)
        fresh.cookies.clear()

        # /oauth2/session-binding: the payload as session_id, as state next to a started session (a new one
        # each time: a wrong state cancels it), as code; then a completed session (a reload) with the payload
        # everywhere else.
        pending_session = new_session_uri()
        pending_flow = harness.flow(ALICE, pending_session, flow_id=flow_id)
        started = await pending.request("GET", "/oauth2/start", query=encode_query([("flow", pending_flow)]), headers=who)
        if started.status != 302:
            tally.failures.append(f"/oauth2/start of a pending session refused ({started.status})")
        for position, params, client in (
            ("session_id", [("session_id", payload)], fresh),
            ("state", [("session_id", pending_session), ("state", payload)], pending),
            ("code", [("code", payload), ("state", payload)], fresh),
            ("decoy parameters", [("session_id", done_session), *_decoys(payload)], done),
        ):
            answer = await client.request("GET", "/oauth2/session-binding", query=encode_query(params), headers=who)
            tally.check("binding GET /oauth2/session-binding", position, payload, answer)
        query = encode_query([("session_id", done_session)])
        for position, path in (("headers", "/oauth2/session-binding"), ("headers, trailing slash", "/oauth2/session-binding/")):
            answer = await done.request("GET", path, query=query, headers=[*who, *_url_headers(payload)])
            tally.check("binding GET /oauth2/session-binding", position, payload, answer)

        # The rest of both services: every route, the payload in decoy parameters, URL headers, the path.
        targets: list[tuple[str, AsgiClient, str, str, bytes, list[tuple[str, str | bytes]]]] = [
            ("binding", fresh, "GET", "/health", b"", []),
            *[("agent", agent_client, m, p, b, h) for m, p, b, h in agent_routes],
        ]
        for service, client, method, path, body, extra in targets:
            endpoint = f"{service} {method} {path}"
            headers: HeaderItems = [*who, *extra]
            answer = await client.request(method, path, query=encode_query(_decoys(payload)), headers=headers, body=body)
            tally.check(endpoint, "decoy parameters", payload, answer)
            answer = await client.request(method, path, headers=[*who, *extra, *_url_headers(payload)], body=body)
            tally.check(endpoint, "headers", payload, answer)
            answer = await client.request(method, path.rstrip("/") + "/", headers=[*who, *extra, *_url_headers(payload)], body=body)
            tally.check(endpoint, "headers, trailing slash", payload, answer)
        for service, app in (("binding", binding), ("agent", agent.agent_app)):
            client = AsgiClient(app, ORIGIN_HOST)
            path = payload if payload.startswith("/") else "/" + payload
            answer = await client.request("GET", path, headers=who)
            tally.check(f"{service} GET <payload as path>", "path", payload, answer)

    if len(agent.agentcore.calls) != setup_calls:
        tally.failures.append(f"AgentCore was called on invalid input: {[c.operation for c in agent.agentcore.calls[setup_calls:]]}")
    if agent.bedrock.requests:
        tally.failures.append("the model was called for a refused request")
    return tally


def test_corpus_is_several_hundred_distinct_payloads() -> None:
    assert len(CORPUS) == len(set(CORPUS)) >= 500
    assert payloads() == CORPUS  # deterministic
    for needle in ("//evil.example", "/\\evil.example", "%2F%2Fevil.example", "\uff0f\uff0f", "\u2044", "\u3002", "\u202e", "javascript:"):
        assert any(needle in payload for payload in CORPUS), needle


@pytest.mark.parametrize(
    ("location", "leaves"),
    [
        ("/", False),
        ("/oauth2/start?flow=x", False),
        (ORIGIN + "/api/session", False),
        ("//evil.example", True),
        ("/\\evil.example", True),
        ("/%2F/evil.example", True),
        ("https://evil.example/", True),
        (ORIGIN + "@evil.example", True),
        (ORIGIN + ".evil.example/", True),
        ("http://agent.example.com/", True),  # another scheme is another origin
        ("javascript:alert(1)", True),
        (" /x", True),
    ],
)
def test_the_origin_check_itself(location: str, leaves: bool) -> None:
    assert leaves_origin(location, ORIGIN) is leaves


def test_no_redirect_leaves_the_origin(make_stack: Callable[..., AgentHarness], capsys: pytest.CaptureFixture[str]) -> None:
    agent = make_stack()
    started = time.perf_counter()
    tally = asyncio.run(_run(agent, CORPUS))
    elapsed = time.perf_counter() - started
    capsys.readouterr()  # the services' own log lines
    with capsys.disabled():
        print(
            f"\nopen-redirect corpus: {len(CORPUS)} payloads, {len(tally.by_endpoint)} endpoints, "
            f"{tally.requests} requests in {elapsed:.1f} s"
        )
    assert tally.failures == [], f"{len(tally.failures)} failures, first ones:\n" + "\n".join(tally.failures[:25])
    assert tally.requests >= len(CORPUS) * 20


def test_unknown_paths_and_slashes_never_redirect_on_the_host_header(make_stack: Callable[..., AgentHarness]) -> None:
    """The framework's trailing-slash redirect builds an absolute URL from `Host`: it must be off."""
    agent = make_stack()
    who = _signed_in_headers(agent)

    async def run() -> list[Answer]:
        answers = []
        for app, path in (
            (agent.binding.app, "/oauth2/session-binding/"),
            (agent.binding.app, "/oauth2/start/"),
            (agent.agent_app, "/api/session/"),
            (agent.agent_app, "/health/"),
            (agent.agent_app, "/static"),
        ):
            client = AsgiClient(app, ORIGIN_HOST)
            query = encode_query([("session_id", f"urn:ietf:params:oauth:request_uri:{uuid.uuid4()}")])
            answers.append(await client.request("GET", path, query=query, headers=[*who, ("host", "evil.example")]))
        return answers

    for answer in asyncio.run(run()):
        assert answer.header("location") == [], answer.headers
        assert answer.status == 404
