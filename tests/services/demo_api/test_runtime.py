"""Settings from the environment, and the Lambda entry point behind an API Gateway HTTP API (payload v2)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from mangum import Mangum
from mangum.types import LambdaCognitoIdentity, LambdaMobileClientContext

from local.standins.cognito_tokens import CognitoSigningKey, JwksServer
from services.common.logs import JsonFormatter
from services.demo_api import main
from services.demo_api.main import create_app
from services.demo_api.notes import DynamoDbNotesStore
from services.demo_api.runtime import Runtime
from services.demo_api.settings import DemoApiSettings, load_demo_settings
from services.demo_api.tasks import DynamoDbTasksStore
from tests.services.demo_api.conftest import ALICE, CLIENT_ID, CLIENT_IDS, ISSUER, PROFILE, REGION, TASKS_CLIENT_ID, TASKS_WRITE, WRITE

ENV = {
    "APP_PROFILE": "sandbox",
    "AWS_REGION": REGION,
    "DEMO_ISSUER": ISSUER,
    "DEMO_CLIENT_IDS": CLIENT_IDS,
    "NOTES_TABLE": "agentcore-ecs-sandbox-Notes-1A2B3C",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DEMO_JWKS_URL", "NOTES_TABLE", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_settings_come_from_the_environment(environment: pytest.MonkeyPatch) -> None:
    settings = load_demo_settings()
    assert settings.demo_issuer == ISSUER
    assert settings.jwks_url == f"{ISSUER}/.well-known/jwks.json"
    assert settings.notes_table == "agentcore-ecs-sandbox-Notes-1A2B3C"
    environment.setenv("DEMO_JWKS_URL", "https://keys.example.com/jwks.json")
    environment.setenv("NOTES_TABLE", "agentcore-ecs-sandbox-Notes-4D5E6F")
    settings = load_demo_settings()
    assert settings.jwks_url == "https://keys.example.com/jwks.json"
    assert settings.notes_table == "agentcore-ecs-sandbox-Notes-4D5E6F"


@pytest.mark.parametrize("name", ["DEMO_ISSUER", "NOTES_TABLE"])  # no table, no notes: there is no in-memory fallback
def test_a_missing_setting_stops_the_process_naming_it(environment: pytest.MonkeyPatch, name: str) -> None:
    environment.delenv(name)
    with pytest.raises(SystemExit, match=name):
        load_demo_settings()


@pytest.mark.parametrize("name", ["DEMO_ISSUER", "DEMO_JWKS_URL"])
def test_plain_http_keys_are_refused_outside_the_local_profile(environment: pytest.MonkeyPatch, name: str) -> None:
    environment.setenv(name, "http://127.0.0.1:9000/eu-west-1_Demo")
    with pytest.raises(SystemExit, match=f"{name} must be https"):
        load_demo_settings()
    environment.setenv("APP_PROFILE", "local")
    assert load_demo_settings().app_profile == "local"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AWS_REGION", "Europe"),
        ("DEMO_ISSUER", "cognito-idp.eu-west-1.amazonaws.com/x"),
        ("NOTES_TABLE", "a b"),
        ("DEMO_CLIENT_IDS", ""),
        ("DEMO_CLIENT_IDS", "   "),
        ("DEMO_CLIENT_IDS", "a b a"),
        ("DEMO_CLIENT_IDS", " ".join(f"client-{i}" for i in range(11))),
        ("DEMO_CLIENT_IDS", "client-1 clïent-2"),
        ("DEMO_CLIENT_IDS", "x" * 129),
    ],
    ids=["region", "issuer", "table", "no-client", "blank-clients", "repeated-client", "eleven-clients", "non-ascii", "too-long"],
)
def test_malformed_settings_are_refused(environment: pytest.MonkeyPatch, name: str, value: str) -> None:
    environment.setenv(name, value)
    with pytest.raises(SystemExit, match=name):
        load_demo_settings()


def test_the_client_ids_are_a_space_separated_list(environment: pytest.MonkeyPatch) -> None:
    assert load_demo_settings().demo_client_ids == frozenset({CLIENT_ID, TASKS_CLIENT_ID})
    environment.setenv("DEMO_CLIENT_IDS", f"  {CLIENT_ID}  ")
    assert load_demo_settings().demo_client_ids == frozenset({CLIENT_ID})
    ten = [f"client-{i}" for i in range(10)]
    environment.setenv("DEMO_CLIENT_IDS", " ".join(ten))
    assert load_demo_settings().demo_client_ids == frozenset(ten)


def test_a_repeated_client_id_is_named(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("DEMO_CLIENT_IDS", f"{CLIENT_ID} {TASKS_CLIENT_ID} {CLIENT_ID}")
    with pytest.raises(SystemExit, match=f"DEMO_CLIENT_IDS: .*listed more than once: {CLIENT_ID}"):
        load_demo_settings()


def test_the_stores_are_dynamodb_over_one_table(environment: pytest.MonkeyPatch) -> None:
    runtime = Runtime.build(DemoApiSettings(), clock=lambda: 0)  # type: ignore[call-arg]
    assert isinstance(runtime.notes, DynamoDbNotesStore)
    assert isinstance(runtime.tasks, DynamoDbTasksStore)
    assert runtime.notes._table is runtime.tasks._table  # one boto3 client per process


# ------------------------------------------------------------------------------ Lambda


class LambdaContext:
    """What the Lambda runtime passes as `context` (mangum.types.LambdaContext)."""

    function_name = "demo-api"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:111122223333:function:demo-api"
    memory_limit_in_mb = 512
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name = "/aws/lambda/demo-api"
    log_stream_name = "2026/11/28/[$LATEST]0123456789abcdef"
    identity: LambdaCognitoIdentity | None = None
    client_context: LambdaMobileClientContext | None = None

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


def http_api_event(method: str, path: str, *, headers: dict[str, str], body: str | None = None, query: str = "") -> dict[str, Any]:
    """An API Gateway HTTP API event, payload format 2.0, as the JWT-authorized route delivers it."""
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "abc123.execute-api.eu-west-1.amazonaws.com", "x-forwarded-proto": "https", **headers},
        "requestContext": {
            "accountId": "111122223333",
            "apiId": "abc123",
            "authorizer": {"jwt": {"claims": {"sub": ALICE}, "scopes": None}},
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "agent/1"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "28/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795867200000,
        },
        **({"body": body} if body is not None else {}),
        "isBase64Encoded": False,
    }


def test_the_module_exposes_the_app_behind_mangum_without_lifespan() -> None:
    assert isinstance(main.handler, Mangum)
    assert main.handler.app is main.app
    assert main.handler.lifespan == "off"


def test_mangum_answers_http_api_v2_events(
    environment: pytest.MonkeyPatch, jwks: JwksServer, signing_key: CognitoSigningKey, notes_table: str
) -> None:
    # The same path as on Lambda: settings from the environment at the first request, no lifespan.
    environment.setenv("APP_PROFILE", "local")
    environment.setenv("DEMO_JWKS_URL", jwks.url)
    environment.setenv("NOTES_TABLE", notes_table)  # on the local DynamoDB server (AWS_ENDPOINT_URL_DYNAMODB)
    handler = Mangum(create_app(), lifespan="off")
    token = signing_key.mint(sub=ALICE, issuer=ISSUER, client_id=CLIENT_ID, scopes=(PROFILE, WRITE), username="alice")

    profile = handler(http_api_event("GET", "/profile", headers={"authorization": f"Bearer {token}"}), LambdaContext())
    assert profile["statusCode"] == 200
    assert json.loads(profile["body"]) == {"sub": ALICE, "username": "alice"}
    assert profile["headers"]["content-type"] == "application/json"
    assert profile["headers"]["cache-control"] == "no-store"

    created = handler(
        http_api_event(
            "POST",
            "/notes",
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            body=json.dumps({"text": "from Lambda"}),
        ),
        LambdaContext(),
    )
    assert created["statusCode"] == 201
    body = created["body"] if not created.get("isBase64Encoded") else base64.b64decode(created["body"]).decode()
    assert json.loads(body)["text"] == "from Lambda"

    tasks_token = signing_key.mint(sub=ALICE, issuer=ISSUER, client_id=TASKS_CLIENT_ID, scopes=(TASKS_WRITE,))
    task = handler(
        http_api_event(
            "POST",
            "/tasks",
            headers={"authorization": f"Bearer {tasks_token}", "content-type": "application/json"},
            body=json.dumps({"text": "from Lambda"}),
        ),
        LambdaContext(),
    )
    assert task["statusCode"] == 201
    task_id = json.loads(task["body"])["id"]
    done = handler(http_api_event("POST", f"/tasks/{task_id}/done", headers={"authorization": f"Bearer {tasks_token}"}), LambdaContext())
    assert done["statusCode"] == 200
    assert json.loads(done["body"])["done"] is True

    refused = handler(http_api_event("GET", "/notes", headers={"authorization": f"Bearer {token}"}), LambdaContext())
    assert refused["statusCode"] == 403
    assert refused["headers"]["www-authenticate"] == 'Bearer realm="demo-api", error="insufficient_scope", scope="demo-api/notes.read"'

    health = handler(http_api_event("GET", "/health", headers={}), LambdaContext())
    assert health["statusCode"] == 200


def test_the_lambda_runtimes_root_handler_is_replaced_by_the_json_one(environment: pytest.MonkeyPatch, jwks: JwksServer) -> None:
    class LambdaLoggerHandler(logging.Handler):  # the name the Lambda Python runtime's handler has
        def emit(self, record: logging.LogRecord) -> None:
            pass

    root = logging.getLogger()
    lambda_handler = LambdaLoggerHandler()
    root.addHandler(lambda_handler)
    try:
        environment.setenv("APP_PROFILE", "local")
        environment.setenv("DEMO_JWKS_URL", jwks.url)
        handler = Mangum(create_app(), lifespan="off")
        # The first request that needs the settings sets up logging (no lifespan on Lambda).
        assert handler(http_api_event("GET", "/profile", headers={}), LambdaContext())["statusCode"] == 401
        assert lambda_handler not in root.handlers
        assert any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    finally:
        root.removeHandler(lambda_handler)
