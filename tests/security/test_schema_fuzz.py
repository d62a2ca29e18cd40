"""Property-based fuzzing of both services' HTTP surface, derived from their OpenAPI schemas.

The operations come from `app.openapi()` (the apps serve no schema document, but FastAPI still builds
one). Handlers that read the request themselves declare no parameters there, so each operation's
documented inputs are added: the query parameters the binding endpoints read and the chat body's JSON
schema (`ChatRequest.model_json_schema()`). A test fails if the schema gains an operation this module
does not fuzz.

Every case is sent with a real ES256 ALB token, or with none, a garbage one, an expired one, one
from another ALB, or one whose identity header disagrees. Properties: never a 5xx; AgentCore (and the
model) called only for a valid, signed-in chat; a refused request never redirects; a chat stream
always ends with `done`. Schemathesis is not used: the schema declares no parameters, so it would
only fuzz paths and bodies it cannot see.
"""

from __future__ import annotations

import asyncio
import json
import string
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from services.agent.chat_request import ChatRequest
from services.common.flow import new_custom_state
from tests.security.asgi import AsgiClient, encode_query
from tests.security.redirect_corpus import ORIGIN_HOST, leaves_origin
from tests.services.conftest import ALB_ARN, ALICE, AUTHORIZE_URL, BOB, CLIENT_ID, ISSUER, ORIGIN, OTHER_ALB_ARN, AgentHarness, parse_sse

FUZZ = settings(
    max_examples=800,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
CASES: dict[str, int] = {}
OUTCOMES: dict[tuple[str, str, int], int] = {}  # (method, path, status) -> cases

# What each operation reads that the generated schema cannot show (handlers take the raw Request).
DOCUMENTED_QUERY = {
    ("GET", "/oauth2/start"): ("flow",),
    ("GET", "/oauth2/session-binding"): ("session_id", "state", "code"),
    ("GET", "/api/session"): (),
    ("POST", "/api/chat"): (),
    ("POST", "/api/sign-out"): (),
    ("GET", "/api/connections"): (),
    ("POST", "/api/connections/{name}/connect"): (),
    ("POST", "/api/connections/{name}/disconnect"): (),
}
_EMPTY_OBJECT = {"type": "object", "additionalProperties": False}
JSON_BODIES = {
    ("POST", "/api/chat"): ChatRequest.model_json_schema(),
    ("POST", "/api/sign-out"): _EMPTY_OBJECT,
    ("POST", "/api/connections/{name}/connect"): _EMPTY_OBJECT,
    ("POST", "/api/connections/{name}/disconnect"): _EMPTY_OBJECT,
}
# Operations that may call AgentCore once they have accepted a signed-in request: a chat, and a connect
# (it asks for the person's token, or a consent session).
CALLS_AGENTCORE = {("POST", "/api/chat"), ("POST", "/api/connections/{name}/connect")}
_ACCOUNT_NAME = st.one_of(st.sampled_from(["notes", "notes", "nope", "NOTES", "..", "notes/../x"]), st.text(max_size=24))

AUTH_KINDS = ("valid", "valid", "valid", "none", "garbage", "expired", "other_alb", "identity_mismatch", "fuzzed_sub")


def schema_operations(app: Any) -> list[tuple[str, str]]:
    schema = app.openapi()
    return sorted((method.upper(), path) for path, item in schema["paths"].items() for method in item)


# --- strategies -------------------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=64)
_NASTY = st.sampled_from(
    [
        "",
        " ",
        "\r\n",
        "\x00",
        "%00",
        "%",
        "%zz",
        "../../",
        "//evil.example",
        "<script>alert(1)</script>",
        "'\"",
        "urn:ietf:params:oauth:request_uri:",
        "urn:ietf:params:oauth:request_uri:" + "a" * 1100,
        "v1.k2.e30.AAAA",
        "v1..." + "A" * 43,
        "\ud7ff\ue000\U0010ffff",
        "9" * 400,
        "null",
        "{}",
        "[]",
    ]
)
_SESSION_LIKE = st.builds(
    lambda tail: f"urn:ietf:params:oauth:request_uri:{tail}",
    st.text(string.ascii_letters + string.digits + "-._~", min_size=1, max_size=64),
)
_VALUE = st.one_of(_TEXT, _NASTY, _SESSION_LIKE)
_NAME = st.one_of(st.sampled_from(["flow", "session_id", "state", "code", "next", "redirect_uri", "error"]), _TEXT)
_HEADER_NAME = st.one_of(
    st.sampled_from(
        ["host", "cookie", "referer", "x-forwarded-host", "x-forwarded-proto", "content-type", "accept", "x-amzn-oidc-accesstoken"]
    ),
    st.text(string.ascii_lowercase + "-", min_size=1, max_size=24),
)
_HEADERS = st.lists(st.tuples(_HEADER_NAME, st.binary(max_size=128)), max_size=4)


def from_json_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:  # noqa: PLR0911 - one branch per schema keyword
    """Values that satisfy the subset of JSON Schema Pydantic emits for the chat body."""
    if "$ref" in schema:
        return st.deferred(lambda: from_json_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 64), 64))
    if kind == "array":
        return st.lists(from_json_schema(schema.get("items", {}), defs), max_size=min(schema.get("maxItems", 4), 4))
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {name: from_json_schema(sub, defs) for name, sub in properties.items() if name in required},
            optional={name: from_json_schema(sub, defs) for name, sub in properties.items() if name not in required},
        )
    return st.nothing()


_JSON_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def body_strategy(operation: tuple[str, str]) -> st.SearchStrategy[tuple[bytes, str]]:
    """(body, content type): schema-valid JSON most of the time, then broken variants of it."""
    schema = JSON_BODIES.get(operation)
    if schema is None:
        return st.one_of(st.just((b"", "")), st.tuples(st.binary(max_size=64), st.sampled_from(["application/json", "text/plain"])))
    valid = from_json_schema(schema, schema.get("$defs", {}))
    mutated = st.one_of(
        valid.flatmap(lambda body: st.dictionaries(_TEXT, _JSON_ANY, max_size=2).map(lambda extra: {**body, **extra})),
        valid.map(lambda body: {k: v for k, v in body.items() if k != "message"}),
        _JSON_ANY,
    )
    as_json = st.one_of(valid, valid, mutated).map(lambda value: json.dumps(value).encode())
    return st.one_of(
        st.tuples(as_json, st.sampled_from(["application/json", "application/json", "application/json; charset=utf-8", "text/plain", ""])),
        st.tuples(st.binary(max_size=256), st.just("application/json")),
        st.just((b'{"message":"' + b"x" * (300 * 1024) + b'"}', "application/json")),  # over the 256 KiB cap
    )


# --- the run ----------------------------------------------------------------------------------------


@pytest.fixture
def fuzz_stack(make_stack: Callable[..., AgentHarness], capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[AgentHarness, Any]]:
    agent = make_stack()
    loop = asyncio.new_event_loop()  # one loop for every case: the services' limiters live in it
    yield agent, loop
    loop.run_until_complete(agent.agent_app.state.runtime().http.aclose())
    loop.close()
    capsys.readouterr()


def _auth(agent: AgentHarness, kind: str, sub: str) -> list[tuple[str, str | bytes]]:
    key = agent.binding.alb_key
    mint: dict[str, Any] = {"sub": ALICE.sub, "signer": ALB_ARN, "issuer": ISSUER, "client_id": CLIENT_ID, "email": ALICE.email}
    if kind == "none":
        return []
    if kind == "garbage":
        return [("x-amzn-oidc-data", "eyJhbGciOiJub25lIn0=.e30=."), ("x-amzn-oidc-identity", ALICE.sub)]
    if kind == "expired":
        mint["now"] = time.time() - 3600
    if kind == "other_alb":
        mint["signer"] = OTHER_ALB_ARN
    if kind == "fuzzed_sub":
        mint["sub"] = sub
    token = key.mint(**mint)
    identity = "someone-else" if kind == "identity_mismatch" else str(mint["sub"])
    return [("x-amzn-oidc-data", token), ("x-amzn-oidc-identity", identity.encode("utf-8"))]


def _check(agent: AgentHarness, operation: tuple[str, str], auth: str, answer: Any, *, calls_before: int, model_before: int) -> None:
    _, path = operation
    assert answer.status < 500, (operation, answer.status, answer.text[:300])
    for location in answer.header("location"):
        assert not leaves_origin(location, ORIGIN) or location == AUTHORIZE_URL, location
    new_calls = agent.agentcore.calls[calls_before:]
    accepted = operation in CALLS_AGENTCORE and answer.status == 200
    if not accepted:
        assert new_calls == [], (operation, auth, answer.status, [c.operation for c in new_calls])
        assert len(agent.bedrock.requests) == model_before, (operation, auth, answer.status)
        return
    assert auth in {"valid", "fuzzed_sub"}, "a request was accepted without a valid sign-in"
    assert {c.operation for c in new_calls} <= {"GetWorkloadAccessTokenForUserId", "token"}
    if path == "/api/chat":
        events = parse_sse(answer.text)
        assert events and events[-1][0] == "done", answer.text[:300]
    else:
        assert len(agent.bedrock.requests) == model_before, "a connect never asks the model"


def test_every_schema_operation_is_fuzzed(make_stack: Callable[..., AgentHarness]) -> None:
    agent = make_stack()
    operations = schema_operations(agent.agent_app) + schema_operations(agent.binding.app)
    assert sorted(operations) == sorted(DOCUMENTED_QUERY), "a new operation needs its inputs described here"


@FUZZ
@given(data=st.data())
def test_fuzz_binding_service(fuzz_stack: tuple[AgentHarness, Any], data: st.DataObject) -> None:
    agent, loop = fuzz_stack
    operation = data.draw(st.sampled_from(schema_operations(agent.binding.app)), label="operation")
    _fuzz_one(agent, loop, agent.binding.app, operation, data)
    CASES["binding"] = CASES.get("binding", 0) + 1


@FUZZ
@given(data=st.data())
def test_fuzz_agent_service(fuzz_stack: tuple[AgentHarness, Any], data: st.DataObject) -> None:
    agent, loop = fuzz_stack
    operation = data.draw(st.sampled_from(schema_operations(agent.agent_app)), label="operation")
    _fuzz_one(agent, loop, agent.agent_app, operation, data)
    CASES["agent"] = CASES.get("agent", 0) + 1


def _fuzz_one(agent: AgentHarness, loop: Any, app: Any, operation: tuple[str, str], data: st.DataObject) -> None:
    method, path = operation
    auth = data.draw(st.sampled_from(AUTH_KINDS), label="auth")
    sub = data.draw(st.text(min_size=0, max_size=140), label="sub") if auth == "fuzzed_sub" else ""
    params: list[tuple[str, str]] = []
    for name in DOCUMENTED_QUERY[operation]:
        # The parameter the endpoint needs is mostly present once and well formed; the others mostly absent.
        required = name in {"flow", "session_id"}
        count = data.draw(st.sampled_from([1, 1, 1, 0, 2] if required else [0, 0, 0, 1, 2]), label=f"{name} count")
        if name == "flow" and count and data.draw(st.sampled_from([True, True, True, False]), label="real flow"):
            # A genuine signed flow, sometimes another person's or cut short: the verifier must hold.
            owner = data.draw(st.sampled_from(["alice", "bob"]), label="owner")
            _, flow_id = new_custom_state()
            token = agent.binding.flow(
                ALICE if owner == "alice" else BOB,
                f"urn:ietf:params:oauth:request_uri:{uuid.uuid4()}",
                flow_id=flow_id,
            )
            cut = data.draw(st.sampled_from([0, 0, 0, 1, 3]), label="cut")
            params += [(name, token[: len(token) - cut])] * count
        else:
            values = st.one_of(_SESSION_LIKE, _SESSION_LIKE, _VALUE) if name == "session_id" else _VALUE
            params += [(name, data.draw(values, label=name)) for _ in range(count)]
    params += data.draw(st.lists(st.tuples(_NAME, _VALUE), max_size=3), label="extra query")
    body, content_type = data.draw(body_strategy(operation), label="body")
    headers = _auth(agent, auth, sub) + data.draw(_HEADERS, label="headers")
    if content_type:
        headers.append(("content-type", content_type))
    calls_before, model_before = len(agent.agentcore.calls), len(agent.bedrock.requests)
    client = AsgiClient(app, ORIGIN_HOST)
    try:
        query = encode_query(params)
    except UnicodeEncodeError:  # lone surrogates cannot be sent by any client
        return
    target = path.replace("{name}", quote(data.draw(_ACCOUNT_NAME, label="account"), safe="")) if "{name}" in path else path
    answer = loop.run_until_complete(client.request(method, target, query=query, headers=headers, body=body))
    _check(agent, operation, auth, answer, calls_before=calls_before, model_before=model_before)
    OUTCOMES[(method, path, answer.status)] = OUTCOMES.get((method, path, answer.status), 0) + 1


def test_fuzzing_reached_every_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the fuzz tests (pytest keeps file order): the cases reached accepted and refused paths."""
    if not CASES:
        pytest.skip("run with the fuzz tests of this module")
    with capsys.disabled():
        print(f"\nschema fuzzing: {CASES}, total {sum(CASES.values())} cases; outcomes {dict(sorted(OUTCOMES.items()))}")
    statuses: dict[tuple[str, str], set[int]] = {}
    for method, path, status in OUTCOMES:
        statuses.setdefault((method, path), set()).add(status)
    expected = {
        "agent": {("POST", "/api/chat"): {200, 400, 401, 413, 415}, ("GET", "/api/session"): {200, 401}},
        "binding": {("GET", "/oauth2/start"): {302, 400, 401, 403}, ("GET", "/oauth2/session-binding"): {400, 401, 410}},
    }
    for service in CASES:  # under pytest-xdist, only the fuzz tests that ran in this worker
        for operation, wanted in expected[service].items():
            assert wanted <= statuses.get(operation, set()), (operation, statuses.get(operation))
