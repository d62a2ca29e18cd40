"""How the binding service runs: logs without secrets, Lambda (Mangum) behind an ALB, settings errors."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import subprocess
import sys
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from mangum import Mangum

import services.session_binding.main as binding_main
from services.common.settings import load_settings
from services.session_binding import pages
from services.session_binding.main import create_app
from services.session_binding.settings import BindingSettings
from tests.services.conftest import ALICE, ORIGIN, BindingHarness, binding_settings, new_session_uri


def test_no_token_cookie_or_session_id_in_logs_at_debug(
    make_harness: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness = make_harness(log_level="DEBUG")
    alice = harness.browser(ALICE)
    secrets: list[str] = []

    session = new_session_uri()
    flow = harness.flow(ALICE, session)
    secrets += [session, flow]
    alice.start(flow)
    secrets += list(alice.client.cookies.values())
    harness.agentcore.failures = ["ThrottlingException"]
    alice.bind(session)  # retried once, then completes
    secrets += list(alice.client.cookies.values())
    alice.bind(session)  # reload
    other = new_session_uri()
    secrets.append(other)
    harness.browser(ALICE).bind(other)  # refusal: no cookie
    secrets += harness.sent_tokens  # the ALB tokens actually sent (ES256 signatures differ every time)
    assert len(harness.sent_tokens) == 4

    emitted = capsys.readouterr().out
    captured = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert '"event":"binding_completed"' in emitted and '"reason":"cancelled_not_started"' in emitted
    for secret in secrets:
        assert secret not in emitted
        assert secret not in captured
    assert ALICE.sub not in emitted  # users appear as digests only
    for line in emitted.splitlines():
        json.loads(line)  # one JSON object per line


def test_security_event_has_reason_and_digests(harness: BindingHarness, caplog: pytest.LogCaptureFixture) -> None:
    session = new_session_uri()
    harness.browser(ALICE).start(harness.flow(ALICE, session))
    harness.browser(ALICE).bind(session)
    [event] = [r for r in caplog.records if r.name == "security"]
    assert event.__dict__["reason"] == "cancelled_other_browser"
    assert event.__dict__["status"] == 403
    assert event.__dict__["user"] and event.__dict__["session"]
    assert event.__dict__["session"] not in session


def test_mangum_handler_is_the_same_app() -> None:
    assert isinstance(binding_main.handler, Mangum)
    assert binding_main.handler.app is binding_main.app


LAMBDA_CONTEXT: Any = SimpleNamespace(function_name="session-binding", aws_request_id="bench-0001", memory_limit_in_mb="512")


def _alb_event(path: str, query: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
    return {
        "requestContext": {
            "elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/binding/0123456789abcdef"}
        },
        "httpMethod": "GET",
        "path": path,
        "multiValueQueryStringParameters": {k: [quote(v, safe="")] for k, v in query.items()},
        "multiValueHeaders": {k: [v] for k, v in {"host": "agent.example.com", "x-forwarded-proto": "https", **headers}.items()},
        "body": "",
        "isBase64Encoded": False,
    }


@pytest.mark.usefixtures("lambda_event_loop")
def test_mangum_answers_an_alb_lambda_target_event_the_same_way(harness: BindingHarness) -> None:
    handler = Mangum(harness.app, lifespan="off")
    session = new_session_uri()
    token = harness.token(ALICE)

    started = handler(_alb_event("/oauth2/start", {"flow": harness.flow(ALICE, session)}, {"x-amzn-oidc-data": token}), LAMBDA_CONTEXT)
    assert started["statusCode"] == 302
    [cookie] = started["multiValueHeaders"]["set-cookie"]
    assert cookie.startswith("__Host-agentcore-binding-") and "HttpOnly" in cookie and "Secure" in cookie

    cookie_pair = cookie.split(";", 1)[0]
    bound = handler(
        _alb_event(
            "/oauth2/session-binding",
            {"session_id": session, "state": harness.custom_states[session]},
            {"x-amzn-oidc-data": token, "cookie": cookie_pair},
        ),
        LAMBDA_CONTEXT,
    )
    assert bound["statusCode"] == 200
    body = base64.b64decode(bound["body"]).decode() if bound.get("isBase64Encoded") else bound["body"]
    assert pages.SUCCESS.title in body
    assert bound["multiValueHeaders"]["referrer-policy"] == ["no-referrer"]
    [call] = harness.agentcore.completions()
    assert call.body == {"sessionUri": session, "userIdentifier": {"userId": ALICE.sub}}

    # Same refusal as under uvicorn: a session this browser did not start, no call.
    other = new_session_uri()
    harness.browser(ALICE).start(harness.flow(ALICE, other))
    refused = handler(_alb_event("/oauth2/session-binding", {"session_id": other}, {"x-amzn-oidc-data": token}), LAMBDA_CONTEXT)
    assert refused["statusCode"] == 403
    assert len(harness.agentcore.completions()) == 1


def test_csp_allows_exactly_the_inline_stylesheet(harness: BindingHarness) -> None:
    response = harness.browser(None).client.get("/oauth2/session-binding")
    [style] = re.findall(r"<style>(.*?)</style>", response.text, re.S)
    expected = "sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    csp = response.headers["content-security-policy"]
    assert f"style-src '{expected}'" in csp and "default-src 'none'" in csp
    assert "<script" not in response.text and "http" not in response.text.split("<body>", 1)[1]  # no third-party resource


def test_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALB_ARN", "OIDC_ISSUER", "FLOW_SIGNING_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BINDING_TABLE", "agentcore-ecs-sandbox-BindingSessions-1A2B3C")
    monkeypatch.setenv("CONNECTIONS_TABLE", "agentcore-ecs-sandbox-Connections-1A2B3C")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("PUBLIC_BASE_URL", ORIGIN)
    monkeypatch.setenv("OIDC_CLIENT_ID", "x")
    monkeypatch.setenv("ALB_ARN", "arn:aws:iam::123456789012:role/not-an-alb")
    with pytest.raises(SystemExit) as caught:
        load_settings(BindingSettings)
    message = str(caught.value)
    assert message.startswith("config error: ")
    assert "ALB_ARN: Value error, expected an Application Load Balancer ARN" in message
    assert "OIDC_ISSUER: Field required" in message
    # Once every field is well-formed, the signing keys' source is checked: exactly one of value or ARN.
    monkeypatch.setenv("ALB_ARN", "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/a/0123456789abcdef")
    monkeypatch.setenv("OIDC_ISSUER", "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X")
    with pytest.raises(SystemExit, match=r"set exactly one of FLOW_SIGNING_KEYS \(the value\) and FLOW_SIGNING_KEYS_SECRET_ARN"):
        load_settings(BindingSettings)


def test_plain_http_endpoints_are_refused_outside_the_local_profile(key_server: Any) -> None:
    with pytest.raises(ValueError, match="OIDC_ISSUER must be https:// outside the local profile"):
        binding_settings(key_server, app_profile="sandbox", oidc_issuer="http://cognito.example", alb_keys_base_url=None)
    with pytest.raises(ValueError, match="ALB_KEYS_BASE_URL must be https://"):
        binding_settings(key_server, app_profile="prod", public_base_url="https://agent.example.com")


def test_log_digests_are_keyed(harness: BindingHarness, caplog: pytest.LogCaptureFixture) -> None:
    from services.common.signed import digest

    harness.browser(ALICE).bind(new_session_uri())
    [event] = [r for r in caplog.records if r.name == "security"]
    assert event.__dict__["user"] != digest(ALICE.user_key, 9)  # an unkeyed digest would link to a known user list


def test_bad_signing_keys_fail_at_start(key_server: Any) -> None:
    settings = binding_settings(key_server, flow_signing_keys='{"kid": "k1", "key": "short"}')
    app = create_app(lambda: settings)
    with pytest.raises(SystemExit, match="FLOW_SIGNING_KEYS: flow signing keys: key 'k1' is shorter than 32"):
        app.state.runtime()


def test_uvicorn_refuses_to_start_with_bad_settings() -> None:
    env = {"PATH": "/usr/bin:/bin", "AWS_REGION": "eu-west-1"}
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "services.session_binding.main:app", "--port", "0", "--lifespan", "on"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "config error: " in result.stderr + result.stdout
    assert "ALB_ARN: Field required" in result.stderr + result.stdout


class _SecretsManagerStandIn:
    """GetSecretValue over the awsJson1.1 wire protocol, on loopback: enough for a Lambda cold start."""

    def __init__(self, secrets: dict[str, str]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict[str, Any]] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
                standin.requests.append({"target": self.headers.get("x-amz-target"), **body})
                secret = secrets.get(body.get("SecretId", ""))
                status, payload = (
                    (200, {"ARN": body["SecretId"], "Name": "n", "SecretString": secret})
                    if secret
                    else (400, {"__type": "ResourceNotFoundException", "message": "no"})
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/x-amz-json-1.1")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:agentcore-ecs-signing-AbCdEf"


def test_on_lambda_the_signing_keys_are_read_from_secrets_manager_at_start(make_harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.services.conftest import SIGNING_KEYS

    standin = _SecretsManagerStandIn({SECRET_ARN: json.dumps(SIGNING_KEYS)})
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", standin.endpoint)
    try:
        harness = make_harness(flow_signing_keys=None, flow_signing_keys_secret_arn=SECRET_ARN)
        alice = harness.browser(ALICE)
        session = new_session_uri()
        assert alice.start(harness.flow(ALICE, session)).status_code == 302
        assert alice.bind(session).status_code == 200
        assert [r["target"] for r in standin.requests] == ["secretsmanager.GetSecretValue"]  # once, at start
    finally:
        standin.stop()


def test_an_unreadable_signing_secret_stops_the_start(key_server: Any, monkeypatch: pytest.MonkeyPatch, agentcore: Any) -> None:
    standin = _SecretsManagerStandIn({})
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", standin.endpoint)
    try:
        settings = binding_settings(key_server, flow_signing_keys=None, flow_signing_keys_secret_arn=SECRET_ARN)
        with pytest.raises(SystemExit, match=r"FLOW_SIGNING_KEYS_SECRET_ARN: could not read the secret \(ResourceNotFoundException\)"):
            create_app(lambda: settings).state.runtime()
    finally:
        standin.stop()
