"""`python -m local.agentcore_identity.tour`: boto3 through every operation the emulator serves.

A runnable example of the AgentCore Identity calls this project makes, in the order an agent makes
them, against the emulator (started here, or the one at `--endpoint`, e.g. `make demo`'s at
http://127.0.0.1:8003) and a loopback authorization server that consents at once. Each step prints
the operation and what came back (tokens shortened). Exit status 0 when every step behaved as the
real service documents it, 1 otherwise.

The boto3 clients are the ordinary ones: only `endpoint_url` points them here.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from local.agentcore_identity.auto_provider import CLIENT_ID, CLIENT_SECRET, OAuthProvider
from local.agentcore_identity.server import Emulator

RETURN_URL = "http://127.0.0.1:8000/oauth2/session-binding"
SCOPES = ["notes.read", "notes.write"]


class _Stop(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _location(url: str) -> str:
    """GET without following: the redirect's target (what a browser would go to next)."""
    try:
        urllib.request.build_opener(_Stop).open(url, timeout=10)
    except urllib.error.HTTPError as exc:
        if exc.code in (302, 303) and exc.headers.get("location"):
            return str(exc.headers["location"])
        raise
    raise RuntimeError(f"{url} did not redirect")


class TourFailed(Exception):
    """A step did not behave as the real service documents it."""


def check(condition: bool, what: str = "an expectation") -> None:
    """Like assert, but kept under `python -O`: the tour's verdict must not depend on how it is run."""
    if not condition:
        raise TourFailed(what)


def _short(value: str) -> str:
    return value if len(value) <= 24 else f"{value[:12]}…{value[-6:]}"


def _client(service: str, endpoint: str) -> Any:
    config = Config(region_name="us-east-1", retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10)
    return boto3.client(
        service,
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the emulator checks no signature
        config=config,
    )


def _unsigned_jwt(sub: str) -> str:
    """A JWT-shaped user token (the emulator reads `sub` without verifying, as documented). The signature
    part is a placeholder: botocore's UserTokenType pattern needs three non-empty parts."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part({'sub': sub, 'iss': 'https://issuer.example'})}.unsigned"


def tour(endpoint: str, provider: OAuthProvider) -> None:
    control, data = _client("bedrock-agentcore-control", endpoint), _client("bedrock-agentcore", endpoint)
    suffix = uuid.uuid4().hex[:8]
    workload, provider_name = f"tour-agent-{suffix}", f"tour-notes-{suffix}"
    _control_plane(control, provider, workload, provider_name)
    alice = _workload_tokens(data, workload)
    _consent(data, workload_token=alice, provider_name=provider_name)


def step(operation: str, detail: str) -> None:
    print(f"  {operation:<36} {detail}", flush=True)


def _control_plane(control: Any, provider: OAuthProvider, workload: str, provider_name: str) -> None:
    """The workload identity with its allowed return URL, and the provider's credential provider."""
    created = control.create_workload_identity(name=workload, allowedResourceOauth2ReturnUrls=["http://127.0.0.1:9/old"])
    step("CreateWorkloadIdentity", created["workloadIdentityArn"])
    control.update_workload_identity(name=workload, allowedResourceOauth2ReturnUrls=[RETURN_URL])
    got = control.get_workload_identity(name=workload)
    check(got["allowedResourceOauth2ReturnUrls"] == [RETURN_URL], "UpdateWorkloadIdentity did not replace the return URLs")
    step("UpdateWorkloadIdentity / Get…", f"allowed return URLs {got['allowedResourceOauth2ReturnUrls']}")

    made = control.create_oauth2_credential_provider(
        name=provider_name,
        credentialProviderVendor="CustomOauth2",
        oauth2ProviderConfigInput={
            "customOauth2ProviderConfig": {
                "oauthDiscovery": {"discoveryUrl": provider.discovery_url},
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
            }
        },
    )
    step("CreateOauth2CredentialProvider", f"callback {made['callbackUrl']}")
    described = control.get_oauth2_credential_provider(name=provider_name)
    check(described["callbackUrl"] == made["callbackUrl"], "the callback URL changed")
    check(CLIENT_SECRET not in json.dumps(described, default=str), "GetOauth2CredentialProvider returned the client secret")
    step("GetOauth2CredentialProvider", f"vendor {described['credentialProviderVendor']}, no secret in the answer")


def _workload_tokens(data: Any, workload: str) -> str:
    """The three ways to a workload access token; returns alice's (by user id)."""
    plain = data.get_workload_access_token(workloadName=workload)["workloadAccessToken"]
    step("GetWorkloadAccessToken", _short(plain))
    by_jwt = data.get_workload_access_token_for_jwt(workloadName=workload, userToken=_unsigned_jwt("carol"))["workloadAccessToken"]
    step("GetWorkloadAccessTokenForJWT", _short(by_jwt))
    alice = data.get_workload_access_token_for_user_id(workloadName=workload, userId="alice")["workloadAccessToken"]
    step("GetWorkloadAccessTokenForUserId", f"alice: {_short(alice)}")
    return str(alice)


def _consent(data: Any, *, workload_token: str, provider_name: str) -> None:
    """A vault miss, the consent through the provider and the callback, completion (once, by alice only), a vault hit."""
    request = {
        "workloadIdentityToken": workload_token,
        "resourceCredentialProviderName": provider_name,
        "scopes": SCOPES,
        "oauth2Flow": "USER_FEDERATION",
        "resourceOauth2ReturnUrl": RETURN_URL,
        "customState": "tour-state",
    }
    try:
        data.get_resource_oauth2_token(**(request | {"resourceOauth2ReturnUrl": "https://evil.example/"}))
        raise TourFailed("a return URL outside the allowed list was accepted")
    except ClientError as exc:
        step("GetResourceOauth2Token (bad return)", exc.response["Error"]["Code"])
    started = data.get_resource_oauth2_token(**request)
    step("GetResourceOauth2Token (vault miss)", f"sessionUri {_short(started['sessionUri'])}, authorizationUrl at the provider")

    callback = _location(started["authorizationUrl"])  # the provider consents at once and redirects
    landed = _location(callback)  # AgentCore's callback exchanges the code, then sends the browser on
    check(landed.startswith(RETURN_URL + "?") and "session_id=" in landed, "the callback did not return to the return URL with session_id")
    step("(browser) provider -> callback -> return URL", _short(landed))

    try:
        data.complete_resource_token_auth(sessionUri=started["sessionUri"], userIdentifier={"userId": "bob"})
        raise TourFailed("another user completed alice's session")
    except ClientError as exc:
        step("CompleteResourceTokenAuth (bob)", exc.response["Error"]["Code"])
    data.complete_resource_token_auth(sessionUri=started["sessionUri"], userIdentifier={"userId": "alice"})
    step("CompleteResourceTokenAuth (alice)", "completed")
    try:
        data.complete_resource_token_auth(sessionUri=started["sessionUri"], userIdentifier={"userId": "alice"})
        raise TourFailed("a session completed twice")
    except ClientError as exc:
        step("CompleteResourceTokenAuth (again)", exc.response["Error"]["Code"])

    token = data.get_resource_oauth2_token(**request)
    check("accessToken" in token, "no token from the vault after completion")
    step("GetResourceOauth2Token (vault hit)", f"accessToken {_short(token['accessToken'])}")
    forced = data.get_resource_oauth2_token(**(request | {"forceAuthentication": True}))
    check("authorizationUrl" in forced, "forceAuthentication returned the stored token")
    step("GetResourceOauth2Token (forced)", "a new session, the stored token not returned")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.agentcore_identity.tour", description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="a running emulator, e.g. http://127.0.0.1:8003 (default: start one here)")
    args = parser.parse_args(argv)
    provider = OAuthProvider().start()
    emulator = None if args.endpoint else Emulator().start()
    endpoint = args.endpoint or (emulator.base_url if emulator else "")
    print(f"AgentCore Identity emulator at {endpoint} (local stand-in); provider at {provider.issuer}")
    try:
        tour(endpoint, provider)
    except (TourFailed, ClientError, OSError, RuntimeError) as exc:
        print(f"tour failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        provider.stop()
        if emulator is not None:
            emulator.stop()
    print("every operation answered as documented")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
