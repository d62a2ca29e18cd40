"""The AgentCore Identity emulator, driven by real boto3 clients against a loopback OAuth provider."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.agentcore_identity import Emulator, jwt_subject
from local.agentcore_identity.auto_provider import CLIENT_ID, CLIENT_SECRET, OAuthProvider

RETURN_URL = "http://127.0.0.1:8000/oauth2/session-binding"
SCOPES = ["notes.read", "openid"]
ROOT = Path(__file__).resolve().parents[2]
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def provider() -> Iterator[OAuthProvider]:
    p = OAuthProvider().start()
    yield p
    p.stop()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(session_ttl_s=600) as e:
        yield e


def _client(service: str, endpoint: str, *, max_attempts: int = 3) -> Any:
    config = Config(region_name="us-east-1", retries={"mode": "standard", "total_max_attempts": max_attempts}, read_timeout=10)
    return boto3.session.Session(**DUMMY_CREDENTIALS).client(service, endpoint_url=endpoint, config=config)


class Stack:
    """A workload identity and a provider in one emulator, and helpers for the 3-legged flow."""

    def __init__(self, emulator: Emulator, provider: OAuthProvider) -> None:
        self.emulator, self.provider = emulator, provider
        self.control = _client("bedrock-agentcore-control", emulator.base_url)
        self.data = _client("bedrock-agentcore", emulator.base_url)
        self.workload = f"agent-{uuid.uuid4().hex[:8]}"
        self.control.create_workload_identity(name=self.workload, allowedResourceOauth2ReturnUrls=[RETURN_URL])
        self.provider_name = f"demo-{uuid.uuid4().hex[:8]}"
        self.created = self.control.create_oauth2_credential_provider(
            name=self.provider_name,
            credentialProviderVendor="CustomOauth2",
            oauth2ProviderConfigInput={
                "customOauth2ProviderConfig": {
                    "oauthDiscovery": {"discoveryUrl": provider.discovery_url},
                    "clientId": CLIENT_ID,
                    "clientSecret": CLIENT_SECRET,
                }
            },
        )

    def workload_token(self, user: str) -> str:
        return str(self.data.get_workload_access_token_for_user_id(workloadName=self.workload, userId=user)["workloadAccessToken"])

    def resource_token(self, token: str, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {
            "workloadIdentityToken": token,
            "resourceCredentialProviderName": self.provider_name,
            "scopes": SCOPES,
            "oauth2Flow": "USER_FEDERATION",
            "resourceOauth2ReturnUrl": RETURN_URL,
        }
        result: dict[str, Any] = self.data.get_resource_oauth2_token(**(params | extra))
        return result

    def consent(self, authorization_url: str) -> str:
        """Follow the authorization URL (provider consents at once) and the callback; return the final Location."""
        status, location = _get(authorization_url)
        assert status == 302 and location.startswith(self.emulator.base_url + "/identities/oauth2/callback/")
        status, location = _get(location)
        assert status == 302, location
        return location

    def signed_in(self, user: str) -> str:
        """Run the whole flow for `user`; return their workload token."""
        token = self.workload_token(user)
        start = self.resource_token(token)
        self.consent(start["authorizationUrl"])
        self.data.complete_resource_token_auth(sessionUri=start["sessionUri"], userIdentifier={"userId": user})
        return token


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _get(url: str) -> tuple[int, str]:
    """GET without following redirects: (status, Location or body)."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("location") or exc.read().decode()


def _code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc_info.value.response["Error"]["Code"])


@pytest.fixture
def stack(emulator: Emulator, provider: OAuthProvider) -> Stack:
    return Stack(emulator, provider)


def test_control_plane_round_trip(stack: Stack, provider: OAuthProvider) -> None:
    assert stack.created["credentialProviderArn"].endswith(f"/oauth2credentialprovider/{stack.provider_name}")
    got = stack.control.get_oauth2_credential_provider(name=stack.provider_name)
    callback = got["callbackUrl"]
    assert callback.startswith(stack.emulator.base_url + "/identities/oauth2/callback/")
    uuid.UUID(callback.rsplit("/", 1)[-1])
    assert got["oauth2ProviderConfigOutput"]["customOauth2ProviderConfig"]["clientId"] == CLIENT_ID
    assert got["credentialProviderVendor"] == "CustomOauth2"

    identity = stack.control.get_workload_identity(name=stack.workload)
    assert identity["allowedResourceOauth2ReturnUrls"] == [RETURN_URL]
    stack.control.update_workload_identity(name=stack.workload, allowedResourceOauth2ReturnUrls=[RETURN_URL, "http://localhost:9/x"])
    assert stack.control.get_workload_identity(name=stack.workload)["allowedResourceOauth2ReturnUrls"] == [
        RETURN_URL,
        "http://localhost:9/x",
    ]

    with pytest.raises(stack.control.exceptions.ConflictException):
        stack.control.create_workload_identity(name=stack.workload)
    with pytest.raises(stack.control.exceptions.ResourceNotFoundException):
        stack.control.get_workload_identity(name="no-such-workload")


def test_return_url_not_allowed(stack: Stack) -> None:
    token = stack.workload_token("alice")
    with pytest.raises(stack.data.exceptions.ValidationException):
        stack.resource_token(token, resourceOauth2ReturnUrl="https://evil.example/steal")


def test_full_flow_with_redirect_state_and_single_completion(stack: Stack, provider: OAuthProvider) -> None:
    token = stack.workload_token("alice")
    start = stack.resource_token(token, customState="flow-123")
    assert start["sessionUri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert start["sessionStatus"] == "IN_PROGRESS" and "accessToken" not in start
    url = urllib.parse.urlsplit(start["authorizationUrl"])
    query = dict(urllib.parse.parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}" == provider.issuer and url.path == "/authorize"
    callback = stack.control.get_oauth2_credential_provider(name=stack.provider_name)["callbackUrl"]
    assert query["redirect_uri"] == callback and query["client_id"] == CLIENT_ID and query["response_type"] == "code"
    assert query["scope"] == "notes.read openid" and query["code_challenge_method"] == "S256" and query["state"]

    final = stack.consent(start["authorizationUrl"])
    landed = urllib.parse.urlsplit(final)
    assert final.startswith(RETURN_URL + "?")
    assert dict(urllib.parse.parse_qsl(landed.query)) == {"session_id": start["sessionUri"], "state": "flow-123"}
    assert stack.emulator.vault_snapshot() == {}  # nothing in the vault before completion

    with pytest.raises(ClientError) as other:
        stack.data.complete_resource_token_auth(sessionUri=start["sessionUri"], userIdentifier={"userId": "bob"})
    assert _code(other) == "ValidationException"
    assert stack.emulator.vault_snapshot() == {}

    stack.data.complete_resource_token_auth(sessionUri=start["sessionUri"], userIdentifier={"userId": "alice"})
    got = stack.resource_token(token)
    assert got["accessToken"].startswith("at-") and "authorizationUrl" not in got

    with pytest.raises(stack.data.exceptions.ValidationException):
        stack.data.complete_resource_token_auth(sessionUri=start["sessionUri"], userIdentifier={"userId": "alice"})

    # Vault keyed by user: bob still has to consent; and scope order does not matter for alice.
    assert "authorizationUrl" in stack.resource_token(stack.workload_token("bob"))
    assert "accessToken" in stack.resource_token(token, scopes=list(reversed(SCOPES)))


def test_callback_replay_and_completion_before_callback(stack: Stack) -> None:
    token = stack.workload_token("carol")
    start = stack.resource_token(token)
    with pytest.raises(stack.data.exceptions.ValidationException):  # consent has not happened yet
        stack.data.complete_resource_token_auth(sessionUri=start["sessionUri"], userIdentifier={"userId": "carol"})
    status, callback = _get(start["authorizationUrl"])
    assert status == 302
    assert _get(callback)[0] == 302
    assert _get(callback)[0] == 400  # the same code and state again: refused
    final_status, _ = _get(callback.split("?")[0] + "?code=x&state=unknown")
    assert final_status == 400


def test_expired_session(provider: OAuthProvider) -> None:
    with Emulator(session_ttl_s=0.3) as emulator:
        stack = Stack(emulator, provider)
        token = stack.workload_token("alice")
        start = stack.resource_token(token)
        stack.consent(start["authorizationUrl"])
        time.sleep(0.4)
        with pytest.raises(stack.data.exceptions.ValidationException):
            stack.data.complete_resource_token_auth(sessionUri=start["sessionUri"], userIdentifier={"userId": "alice"})
        assert emulator.vault_snapshot() == {}


def test_expired_session_by_clock_advance(stack: Stack) -> None:
    token = stack.workload_token("alice")
    start = stack.resource_token(token)
    stack.emulator.advance_clock(601)
    status, callback = _get(start["authorizationUrl"])
    assert status == 302
    assert _get(callback)[0] == 400  # the callback after expiry: refused, nothing exchanged
    with pytest.raises(stack.data.exceptions.ValidationException):
        stack.data.complete_resource_token_auth(sessionUri=start["sessionUri"], userIdentifier={"userId": "alice"})
    assert stack.emulator.vault_snapshot() == {}


def test_refresh_on_expiry_uses_refresh_token(stack: Stack, provider: OAuthProvider) -> None:
    token = stack.signed_in("dave")
    first = stack.resource_token(token)["accessToken"]
    refreshes = provider.grants("refresh_token")
    stack.emulator.advance_clock(provider.state.expires_in + 1)
    second = stack.resource_token(token)["accessToken"]
    assert second != first
    assert provider.grants("refresh_token") == refreshes + 1
    assert stack.resource_token(token)["accessToken"] == second  # fresh again: no more refreshes
    assert provider.grants("refresh_token") == refreshes + 1


def test_force_authentication_starts_new_session(stack: Stack) -> None:
    token = stack.signed_in("erin")
    assert "accessToken" in stack.resource_token(token)
    first = stack.resource_token(token, forceAuthentication=True)
    second = stack.resource_token(token, forceAuthentication=True)
    assert first["authorizationUrl"] and second["authorizationUrl"]
    assert first["sessionUri"] != second["sessionUri"]
    assert "accessToken" in stack.resource_token(token)  # the vault entry stays until a new consent completes


def test_jwt_workload_token_and_user_token_completion(stack: Stack) -> None:
    def jwt(sub: str) -> str:
        part = base64.urlsafe_b64encode(json.dumps({"sub": sub}).encode()).rstrip(b"=").decode()
        return f"eyJhbGciOiJub25lIn0.{part}.sig"

    assert jwt_subject(jwt("frank")) == "frank"
    token = stack.data.get_workload_access_token_for_jwt(workloadName=stack.workload, userToken=jwt("frank"))["workloadAccessToken"]
    start = stack.resource_token(token)
    stack.consent(start["authorizationUrl"])
    stack.data.complete_resource_token_auth(sessionUri=start["sessionUri"], userIdentifier={"userToken": jwt("frank")})
    assert "accessToken" in stack.resource_token(token)

    anonymous = stack.data.get_workload_access_token(workloadName=stack.workload)["workloadAccessToken"]
    with pytest.raises(stack.data.exceptions.ValidationException):
        stack.resource_token(anonymous)
    with pytest.raises(stack.data.exceptions.ResourceNotFoundException):
        stack.data.get_workload_access_token_for_user_id(workloadName="missing", userId="x")


def test_unknown_workload_token_is_unauthorized(stack: Stack) -> None:
    with pytest.raises(stack.data.exceptions.UnauthorizedException):
        stack.resource_token("not-a-token")
    token = stack.workload_token("alice")
    stack.emulator.service.invalidate_workload_tokens()
    with pytest.raises(stack.data.exceptions.UnauthorizedException):
        stack.resource_token(token)


def test_throttling_is_retried_by_standard_mode(stack: Stack) -> None:
    before = stack.emulator.count("GetWorkloadAccessTokenForUserId")
    stack.emulator.faults.script("GetWorkloadAccessTokenForUserId", "ThrottlingException", 1)
    stack.emulator.faults.script("GetWorkloadAccessTokenForUserId", "InternalServerException", 1)
    assert stack.workload_token("alice")
    assert stack.emulator.count("GetWorkloadAccessTokenForUserId") == before + 3

    stack.emulator.faults.set("GetResourceOauth2Token", throttle_probability=1.0)
    client = _client("bedrock-agentcore", stack.emulator.base_url, max_attempts=1)
    with pytest.raises(client.exceptions.ThrottlingException):
        client.get_resource_oauth2_token(
            workloadIdentityToken="x", resourceCredentialProviderName=stack.provider_name, scopes=SCOPES, oauth2Flow="USER_FEDERATION"
        )
    stack.emulator.faults.clear()
    stack.emulator.faults.set(latency_s=0.2)
    started = time.monotonic()
    stack.workload_token("alice")
    assert time.monotonic() - started >= 0.2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_module_entry_point_with_endpoint_env_vars(provider: OAuthProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.agentcore_identity",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--script",
            "GetWorkloadIdentity=ThrottlingException:1",
            "--quota",
            "CompleteResourceTokenAuth=0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(base + "/ping", timeout=1).close()  # noqa: S310 - loopback http URL
                break
            except OSError:
                assert time.monotonic() < deadline, "emulator did not start"
                time.sleep(0.05)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", base)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL", base)
        session = boto3.session.Session(**DUMMY_CREDENTIALS, region_name="us-east-1")
        control = session.client("bedrock-agentcore-control", config=Config(retries={"mode": "standard"}))
        data = session.client("bedrock-agentcore")
        control.create_workload_identity(name="cli-agent", allowedResourceOauth2ReturnUrls=[RETURN_URL])
        assert control.get_workload_identity(name="cli-agent")["name"] == "cli-agent"  # after one scripted throttle
        assert data.get_workload_access_token_for_user_id(workloadName="cli-agent", userId="alice")["workloadAccessToken"]
        stats = json.loads(urllib.request.urlopen(base + "/_emulator/stats", timeout=5).read())  # noqa: S310 - loopback http URL
        assert stats["counts"]["GetWorkloadIdentity"] == 2
        assert stats["quotas"] == {"CompleteResourceTokenAuth": {"tps": 0.0, "burst": 0.0}}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
