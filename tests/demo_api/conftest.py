"""Fixtures for the demo API: real RS256 access tokens, a loopback JWKS endpoint, the app under test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from services.demo_api.config import DemoApiSettings
from services.demo_api.main import create_app
from tests.support.cognito_tokens import CognitoSigningKey, JwksServer

REGION = "eu-west-1"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Demo"
CLIENT_ID = "5demo6agentcore7client8id9"
ALICE = "a1a1a1a1-0000-4000-8000-00000000a11c"
BOB = "b0b0b0b0-0000-4000-8000-000000000b0b"
READ = "demo-api/notes.read"
WRITE = "demo-api/notes.write"
PROFILE = "demo-api/profile.read"
ALL_SCOPES = ("openid", READ, WRITE, PROFILE)
BASE_URL = "https://demo-api.example.com"


@pytest.fixture(scope="session")
def signing_key() -> CognitoSigningKey:
    return CognitoSigningKey()


@pytest.fixture(scope="session")
def other_key() -> CognitoSigningKey:
    """A key the authorization server never published."""
    return CognitoSigningKey()


@pytest.fixture
def jwks(signing_key: CognitoSigningKey) -> Iterator[JwksServer]:
    with JwksServer([signing_key]) as server:
        yield server


def demo_settings(jwks: JwksServer, **overrides: Any) -> DemoApiSettings:
    values: dict[str, Any] = {
        "app_profile": "local",  # the key set is served over loopback http
        "aws_region": REGION,
        "demo_issuer": ISSUER,
        "demo_client_id": CLIENT_ID,
        "demo_jwks_url": jwks.url,
        "log_level": "INFO",
    }
    values.update(overrides)
    return DemoApiSettings(**values)


@dataclass
class DemoApiHarness:
    client: TestClient
    key: CognitoSigningKey
    jwks: JwksServer

    def token(
        self, sub: str = ALICE, scopes: tuple[str, ...] = ALL_SCOPES, *, key: CognitoSigningKey | None = None, **overrides: Any
    ) -> str:
        overrides.setdefault("issuer", ISSUER)
        overrides.setdefault("client_id", CLIENT_ID)
        return (key or self.key).mint(sub=sub, scopes=scopes, **overrides)

    def as_user(self, sub: str = ALICE, scopes: tuple[str, ...] = ALL_SCOPES, **overrides: Any) -> dict[str, str]:
        return bearer(self.token(sub, scopes, **overrides))


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def make_api(signing_key: CognitoSigningKey, jwks: JwksServer) -> Iterator[Callable[..., DemoApiHarness]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> DemoApiHarness:
        settings = demo_settings(jwks, **overrides)
        client = TestClient(create_app(lambda: settings), base_url=BASE_URL)
        client.__enter__()
        clients.append(client)
        return DemoApiHarness(client, signing_key, jwks)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., DemoApiHarness]) -> DemoApiHarness:
    return make_api()
