"""Fixtures for service tests: real ALB-format tokens, a loopback key endpoint, a loopback AgentCore
stand-in reached by a real boto3 client, and browsers (TestClients with their own cookie jars)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from local.agentcore_identity import AgentCoreStandIn
from local.alb.keys import AlbSigningKey, KeyServer
from local.bedrock import BedrockStandIn
from local.dynamodb import BINDING_TABLE, CONNECTIONS_TABLE, LocalDynamoDB, create_table
from local.standins.resource_api import ResourceStandIn
from services.agent.main import create_app as create_agent_app
from services.agent.settings import AgentSettings
from services.common.alb_identity import AlbIdentity
from services.common.flow import issue_flow_token, new_custom_state
from services.common.signed import Keyring
from services.session_binding.main import create_app
from services.session_binding.settings import BindingSettings

REGION = "eu-west-1"
ALB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/agentcore-ecs/0123456789abcdef"
OTHER_ALB_ARN = "arn:aws:elasticloadbalancing:eu-west-1:210987654321:loadbalancer/app/agentcore-ecs/fedcba9876543210"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example1"
CLIENT_ID = "4example5alb6client7id8"
ORIGIN = "https://agent.example.com"
SIGNING_KEYS = [{"kid": "k2", "key": "n" * 48}, {"kid": "k1", "key": "o" * 48}]
AUTHORIZE_URL = "https://idp.example.org/oauth2/authorize?client_id=abc&response_type=code&request_uri=urn%3Aexample"
PROVIDER = "agentcore-ecs-sandbox-demo"

ALICE = AlbIdentity(sub="a1a1a1a1-0000-4000-8000-00000000a11c", issuer=ISSUER, email="alice@example.com")
BOB = AlbIdentity(sub="b0b0b0b0-0000-4000-8000-000000000b0b", issuer=ISSUER, email="bob@example.com")


def new_session_uri() -> str:
    return f"urn:ietf:params:oauth:request_uri:{uuid.uuid4()}"


@pytest.fixture
def alb_key() -> AlbSigningKey:
    return AlbSigningKey()


@pytest.fixture
def key_server(alb_key: AlbSigningKey) -> Iterator[KeyServer]:
    with KeyServer([alb_key]) as server:
        yield server


@pytest.fixture
def agentcore(monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentCoreStandIn]:
    standin = AgentCoreStandIn().start()
    # boto3 finds the stand-in the way the local stack points production code at it.
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", standin.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLOCALSTANDIN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local-stand-in-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield standin
    standin.stop()


@pytest.fixture
def binding_table(local_dynamodb: LocalDynamoDB, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sessions table on the local DynamoDB server, which boto3 finds as in the local stack, and its
    connections table (`connections_table_of`)."""
    name = f"binding-{uuid.uuid4().hex[:12]}"
    create_table(local_dynamodb.client(), name, BINDING_TABLE)
    create_table(local_dynamodb.client(), connections_table_of(name), CONNECTIONS_TABLE)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", local_dynamodb.endpoint)
    return name


def connections_table_of(binding_table: str) -> str:
    """The connections table created with a test's sessions table."""
    return "connections-" + binding_table.removeprefix("binding-")


def binding_settings(key_server: KeyServer, table: str = "unused-table", **overrides: Any) -> BindingSettings:
    values: dict[str, Any] = {
        "binding_table": table,
        "connections_table": connections_table_of(table),
        "app_profile": "local",
        "aws_region": REGION,
        "public_base_url": ORIGIN,
        "alb_arn": ALB_ARN,
        "oidc_issuer": ISSUER,
        "oidc_client_id": CLIENT_ID,
        "alb_keys_base_url": key_server.base_url,
        "alb_key_fetch_timeout_s": 5.0,  # a loaded CI core can take over 0.5 s; the timeout tests set their own
        "flow_signing_keys": json.dumps(SIGNING_KEYS),
        "agentcore_connect_timeout_s": 1.0,
        "agentcore_read_timeout_s": 1.0,
        "agentcore_max_attempts": 3,
        "log_level": "INFO",
    }
    values.update(overrides)
    return BindingSettings(**values)


@dataclass
class Browser:
    """One browser: its own cookie jar, and who is signed in (the ALB adds the header)."""

    client: TestClient
    harness: BindingHarness
    user: AlbIdentity | None

    def headers(self, **token_overrides: Any) -> dict[str, str]:
        if self.user is None:
            return {}
        return {"x-amzn-oidc-data": self.harness.token(self.user, **token_overrides), "x-amzn-oidc-identity": self.user.sub}

    def start(self, flow: str) -> Any:
        return self.client.get("/oauth2/start", params={"flow": flow}, headers=self.headers())

    def bind(self, session_uri: str, *, state: str | Literal["echo"] | None = "echo") -> Any:
        """AgentCore's redirect back: with the flow's customState echoed by default, as AgentCore sends it."""
        params = {"session_id": session_uri}
        echo = self.harness.custom_states.get(session_uri) if state == "echo" else state
        if echo is not None:
            params["state"] = echo
        return self.client.get("/oauth2/session-binding", params=params, headers=self.headers())


@dataclass
class BindingHarness:
    app: FastAPI
    alb_key: AlbSigningKey
    keyring: Keyring
    agentcore: AgentCoreStandIn
    key_server: KeyServer
    offset_s: float = 0.0  # the service's clock runs this far ahead of the wall clock
    sent_tokens: list[str] = field(default_factory=list)  # every ALB token a browser sent
    custom_states: dict[str, str] = field(default_factory=dict)  # sessionUri -> the secret the agent sent as customState
    _clients: list[TestClient] = field(default_factory=list)

    def now(self) -> float:
        return time.time() + self.offset_s

    def token(self, user: AlbIdentity, **overrides: Any) -> str:
        overrides.setdefault("now", self.now())
        token = self.alb_key.mint(sub=user.sub, signer=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID, email=user.email, **overrides)
        self.sent_tokens.append(token)
        return token

    def flow(
        self,
        user: AlbIdentity,
        session_uri: str,
        *,
        url: str = AUTHORIZE_URL,
        ttl_s: int = 600,
        now: int | None = None,
        flow_id: str | None = None,
    ) -> str:
        if flow_id is None:
            custom_state, flow_id = new_custom_state()
            self.custom_states[session_uri] = custom_state
        return issue_flow_token(
            self.keyring,
            identity=user,
            session_uri=session_uri,
            authorization_url=url,
            provider=PROVIDER,
            scopes=("demo-api/notes.read",),
            flow_id=flow_id,
            now=now if now is not None else int(time.time()),
            ttl_s=ttl_s,
        )

    def browser(self, user: AlbIdentity | None) -> Browser:
        client = TestClient(self.app, base_url=ORIGIN, follow_redirects=False)
        client.__enter__()
        self._clients.append(client)
        return Browser(client, self, user)

    def close(self) -> None:
        for client in self._clients:
            client.__exit__(None, None, None)


@pytest.fixture
def make_harness(
    alb_key: AlbSigningKey, key_server: KeyServer, agentcore: AgentCoreStandIn, binding_table: str
) -> Iterator[Callable[..., BindingHarness]]:
    harnesses: list[BindingHarness] = []

    def make(**overrides: Any) -> BindingHarness:
        settings = binding_settings(key_server, binding_table, **overrides)
        harness = BindingHarness(FastAPI(), alb_key, Keyring.from_json(json.dumps(SIGNING_KEYS)), agentcore, key_server)
        harness.app = create_app(lambda: settings, clock=harness.now)
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        harness.close()


@pytest.fixture
def harness(make_harness: Callable[..., BindingHarness]) -> BindingHarness:
    return make_harness()


# --- agent -------------------------------------------------------------------------------------

AGENT_SCOPES = "demo-api/profile.read demo-api/notes.read demo-api/notes.write"


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch, agentcore: AgentCoreStandIn) -> Iterator[BedrockStandIn]:
    standin = BedrockStandIn().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", standin.endpoint)
    yield standin
    standin.stop()


@pytest.fixture
def resource() -> Iterator[ResourceStandIn]:
    standin = ResourceStandIn().start()
    yield standin
    standin.stop()


SCOPE_WORDS = {
    "demo-api/profile.read": "See your profile",
    "demo-api/notes.read": "Read your notes",
    "demo-api/notes.write": "Create, change and delete your notes",
    "demo-api/tasks.read": "Read your task list",
    "demo-api/tasks.write": "Add and complete tasks",
}


def demo_provider(api_url: str | None, *, scopes: str = AGENT_SCOPES, **fields: Any) -> dict[str, Any]:
    """One entry of the agent's PROVIDERS: the demo notes provider unless `fields` say otherwise."""
    entry: dict[str, Any] = {
        "name": "notes",
        "kind": "demo",
        "display_name": "Demo Notes",
        "credential_provider": PROVIDER,
        "scopes": {scope: SCOPE_WORDS.get(scope, f"Use {scope}") for scope in scopes.split()},
        "api_url": api_url,
    }
    return entry | fields


def agent_settings(key_server: KeyServer, resource: ResourceStandIn, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "app_profile": "local",
        "aws_region": REGION,
        "public_base_url": ORIGIN,
        "alb_arn": ALB_ARN,
        "oidc_issuer": ISSUER,
        "oidc_client_id": CLIENT_ID,
        "alb_keys_base_url": key_server.base_url,
        "flow_signing_keys": json.dumps(SIGNING_KEYS),
        "agentcore_max_attempts": 2,
        "bedrock_model_id": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "bedrock_max_attempts": 2,
        "workload_identity_name": "agentcore-ecs-local-agent",
        "providers": [demo_provider(resource.base_url)],
        "connections_table": "unused-connections",
        "session_binding_url": f"{ORIGIN}/oauth2/session-binding",
        "sign_out_url": "https://signin.example/logout?client_id=alb-client&logout_uri=https%3A%2F%2Fagent.example.com%2Fsigned-out",
        "tool_timeout_s": 2.0,
    }
    values.update(overrides)
    return AgentSettings(**values)


class AlbRouter:
    """Routes like the ALB's listener rules: /oauth2/* to the binding service, the rest to the agent."""

    def __init__(self, agent: Any, binding: Any) -> None:
        self.agent, self.binding = agent, binding

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan_both(self.agent, self.binding, receive, send)
            return
        target = self.binding if scope.get("path", "").startswith("/oauth2/") else self.agent
        await target(scope, receive, send)


async def _lifespan_both(agent: Any, binding: Any, receive: Any, send: Any) -> None:
    message = await receive()
    if message["type"] == "lifespan.startup":
        agent.state.runtime()
        binding.state.runtime()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
    if message["type"] == "lifespan.shutdown":
        # A test may drive the app from its own event loop too; its pooled connections die with that loop.
        with contextlib.suppress(RuntimeError):
            await agent.state.runtime().http.aclose()
        await send({"type": "lifespan.shutdown.complete"})


@dataclass
class ChatTurn:
    status: int
    events: list[tuple[str, dict[str, Any]]]
    raw: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == kind]


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))  # ":" lines are heartbeats
        if not lines:
            continue
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@dataclass
class AgentHarness:
    app: Any
    agent_app: FastAPI
    binding: BindingHarness
    agentcore: AgentCoreStandIn
    bedrock: BedrockStandIn
    resource: ResourceStandIn

    def browser(self, user: AlbIdentity | None) -> Browser:
        client = TestClient(self.app, base_url=ORIGIN, follow_redirects=False)
        client.__enter__()
        self.binding._clients.append(client)
        return Browser(client, self.binding, user)

    def chat(self, browser: Browser, message: str = "Who am I?", history: list[dict[str, str]] | None = None) -> ChatTurn:
        response = browser.client.post("/api/chat", json={"message": message, "history": history or []}, headers=browser.headers())
        events = parse_sse(response.text) if response.headers.get("content-type", "").startswith("text/event-stream") else []
        return ChatTurn(response.status_code, events, response.text)

    def consent(self, browser: Browser, turn: ChatTurn) -> None:
        """Follow the prompt as the person would: start link, provider consent, AgentCore's redirect back."""
        [prompt] = turn.of("authorization_required")
        started = browser.client.get(prompt["start_url"], headers=browser.headers())
        assert started.status_code == 302, started.text
        session = started.headers["location"].split("request_uri=", 1)[1]
        state = self.agentcore.custom_states[session]
        back = browser.client.get("/oauth2/session-binding", params={"session_id": session, "state": state}, headers=browser.headers())
        assert back.status_code == 200, back.text
        # One name for the provider on every page: the card's, not AgentCore's credential provider name.
        assert f"access to {prompt['display_name']}" in back.text, back.text


@pytest.fixture
def make_agent(
    make_harness: Callable[..., BindingHarness],
    key_server: KeyServer,
    *,
    agentcore: AgentCoreStandIn,
    bedrock: BedrockStandIn,
    resource: ResourceStandIn,
    binding_table: str,
) -> Callable[..., AgentHarness]:
    def make(**overrides: Any) -> AgentHarness:
        binding = make_harness()
        settings = agent_settings(key_server, resource, **({"connections_table": connections_table_of(binding_table)} | overrides))
        agent_app = create_agent_app(lambda: settings, clock=binding.now)
        return AgentHarness(AlbRouter(agent_app, binding.app), agent_app, binding, agentcore, bedrock, resource)

    return make


@pytest.fixture
def agent(make_agent: Callable[..., AgentHarness]) -> AgentHarness:
    return make_agent()


@pytest.fixture
def lambda_event_loop() -> Iterator[None]:
    """Mangum runs each invocation on the thread's current event loop, as Lambda's runtime provides one.
    An earlier `asyncio.run()` in the same test process leaves none, so give the test its own."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()
