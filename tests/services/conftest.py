"""Fixtures for service tests: real ALB-format tokens, a loopback key endpoint, a loopback AgentCore
stand-in reached by a real boto3 client, and browsers (TestClients with their own cookie jars)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from local.alb.keys import AlbSigningKey, KeyServer
from services.common.alb_identity import AlbIdentity
from services.common.config import BindingSettings
from services.common.flow import issue_flow_token
from services.common.signed import Keyring
from services.session_binding.main import create_app
from tests.support.agentcore_standin import AgentCoreStandIn

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


def binding_settings(key_server: KeyServer, **overrides: Any) -> BindingSettings:
    values: dict[str, Any] = {
        "app_profile": "local",
        "aws_region": REGION,
        "public_base_url": ORIGIN,
        "alb_arn": ALB_ARN,
        "oidc_issuer": ISSUER,
        "oidc_client_id": CLIENT_ID,
        "alb_keys_base_url": key_server.base_url,
        "alb_key_fetch_timeout_s": 0.5,
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

    def bind(self, session_uri: str) -> Any:
        return self.client.get("/oauth2/session-binding", params={"session_id": session_uri}, headers=self.headers())


@dataclass
class BindingHarness:
    app: FastAPI
    alb_key: AlbSigningKey
    keyring: Keyring
    agentcore: AgentCoreStandIn
    key_server: KeyServer
    offset_s: float = 0.0  # the service's clock runs this far ahead of the wall clock
    sent_tokens: list[str] = field(default_factory=list)  # every ALB token a browser sent
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
        return issue_flow_token(
            self.keyring,
            identity=user,
            session_uri=session_uri,
            authorization_url=url,
            provider=PROVIDER,
            scopes=("demo-api/notes.read",),
            flow_id=flow_id or uuid.uuid4().hex,
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
def make_harness(alb_key: AlbSigningKey, key_server: KeyServer, agentcore: AgentCoreStandIn) -> Iterator[Callable[..., BindingHarness]]:
    harnesses: list[BindingHarness] = []

    def make(**overrides: Any) -> BindingHarness:
        settings = binding_settings(key_server, **overrides)
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
