"""Fixtures for the demo API: real RS256 access tokens, a loopback JWKS endpoint, a notes (and tasks) table
on the local DynamoDB server (`local/dynamodb.py`, one per session), the app under test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from local.dynamodb import NOTES_TABLE, LocalDynamoDB
from local.standins.cognito_tokens import CognitoSigningKey, JwksServer
from services.demo_api.main import create_app
from services.demo_api.settings import DemoApiSettings
from tests.support.dynamodb import table, use_local_dynamodb

REGION = "eu-west-1"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Demo"
CLIENT_ID = "5demo6agentcore7client8id9"  # the "Demo Notes" provider's app client
TASKS_CLIENT_ID = "7demo8tasks9client0id1"  # the "Demo Tasks" provider's app client, same issuer
CLIENT_IDS = f"{CLIENT_ID} {TASKS_CLIENT_ID}"  # DEMO_CLIENT_IDS as the environment gives it
ALICE = "a1a1a1a1-0000-4000-8000-00000000a11c"
BOB = "b0b0b0b0-0000-4000-8000-000000000b0b"
READ = "demo-api/notes.read"
WRITE = "demo-api/notes.write"
PROFILE = "demo-api/profile.read"
TASKS_READ = "demo-api/tasks.read"
TASKS_WRITE = "demo-api/tasks.write"
ALL_SCOPES = ("openid", READ, WRITE, PROFILE, TASKS_READ, TASKS_WRITE)
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


@pytest.fixture
def notes_table(local_dynamodb: LocalDynamoDB, fresh_table_name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty notes table of this test's own; the store's boto3 client finds the server as a deployed
    one finds DynamoDB: from the environment (`AWS_ENDPOINT_URL_DYNAMODB`, credentials)."""
    use_local_dynamodb(monkeypatch, local_dynamodb)
    with table(local_dynamodb, fresh_table_name("notes"), NOTES_TABLE) as name:
        yield name


def demo_settings(jwks: JwksServer, notes_table: str, **overrides: Any) -> DemoApiSettings:
    values: dict[str, Any] = {
        "app_profile": "local",  # the key set is served over loopback http
        "aws_region": REGION,
        "demo_issuer": ISSUER,
        "demo_client_ids": CLIENT_IDS,
        "demo_jwks_url": jwks.url,
        "notes_table": notes_table,
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
def make_api(signing_key: CognitoSigningKey, jwks: JwksServer, notes_table: str) -> Iterator[Callable[..., DemoApiHarness]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> DemoApiHarness:
        settings = demo_settings(jwks, notes_table, **overrides)
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
