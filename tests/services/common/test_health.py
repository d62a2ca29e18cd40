"""The foundation-stage services: /health answers, calls nothing, is not cached; Mangum wraps the same app."""

from __future__ import annotations

import importlib

import pytest
from fastapi.testclient import TestClient

from services.agent.main import app as agent_app
from services.session_binding.main import app as binding_app


@pytest.mark.parametrize("app", [agent_app, binding_app], ids=["agent", "session_binding"])
def test_health_is_constant_and_uncached(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("app", [agent_app, binding_app], ids=["agent", "session_binding"])
def test_no_interactive_docs_are_exposed(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404


@pytest.mark.usefixtures("lambda_event_loop")
def test_mangum_handler_serves_the_same_app_as_an_alb_lambda_target() -> None:
    module = importlib.import_module("services.session_binding.main")
    event = {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/x/0"}},
        "httpMethod": "GET",
        "path": "/health",
        "queryStringParameters": {},
        "headers": {"host": "agent.example.com", "x-forwarded-proto": "https"},
        "body": "",
        "isBase64Encoded": False,
    }
    response = module.handler(event, None)
    assert response["statusCode"] == 200
    assert '"status":"ok"' in response["body"].replace(" ", "")


def test_service_code_never_imports_infrastructure_or_local_code() -> None:
    from pathlib import Path

    services = Path(__file__).resolve().parents[3] / "services"
    offenders = [
        str(path)
        for path in services.rglob("*.py")
        for line in path.read_text().splitlines()
        if line.strip().startswith(("import ", "from "))
        and any(f" {pkg}" in line.split("#")[0] for pkg in ("stacks", "cdk_app", "local", "aws_cdk"))
    ]
    assert offenders == []
