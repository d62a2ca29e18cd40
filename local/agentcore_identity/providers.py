"""OAuth2 credential providers of the emulator: the vendors' config shapes, the client secret's source, client authentication.

CreateOauth2CredentialProvider takes one member of botocore's `Oauth2ProviderConfigInput` union, the
one named for `credentialProviderVendor`. CustomOauth2 gives its endpoints (discovery URL or metadata)
and may set `clientAuthenticationMethod` (`CustomOauth2ProviderConfigInput` in botocore's
bedrock-agentcore-control model, also in the CloudFormation schema of
AWS::BedrockAgentCore::OAuth2CredentialProvider). The built-in vendors (GitHub, Google, Microsoft,
Slack) have endpoints the service knows: here the vendors' published ones (an assumption about what
AWS uses), replaceable per vendor so tests can point them at a loopback server.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

OUTBOUND_TIMEOUT_S = 10.0
BASIC, POST = "client_secret_basic", "client_secret_post"
# credentialProviderVendor -> its member of Oauth2ProviderConfigInput / Oauth2ProviderConfigOutput.
VENDOR_CONFIGS = {
    "CustomOauth2": "customOauth2ProviderConfig",
    "GithubOauth2": "githubOauth2ProviderConfig",
    "GoogleOauth2": "googleOauth2ProviderConfig",
    "MicrosoftOauth2": "microsoftOauth2ProviderConfig",
    "SlackOauth2": "slackOauth2ProviderConfig",
}
# ClientAuthenticationMethodType values the emulator performs, as token endpoint auth methods (RFC 8414).
AUTH_METHODS = {"CLIENT_SECRET_BASIC": BASIC, "CLIENT_SECRET_POST": POST}


@dataclass(frozen=True)
class Endpoints:
    """An authorization server's metadata as the provider keeps it (Oauth2AuthorizationServerMetadata)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    response_types: tuple[str, ...] = ("code",)
    auth_methods: tuple[str, ...] = (BASIC,)  # RFC 8414 section 2: client_secret_basic when not listed

    def metadata(self) -> dict[str, Any]:
        methods = [m for m in self.auth_methods if m in (BASIC, POST)]
        out: dict[str, Any] = {
            "issuer": self.issuer,
            "authorizationEndpoint": self.authorization_endpoint,
            "tokenEndpoint": self.token_endpoint,
            "responseTypes": list(self.response_types),
        }
        return out | ({"tokenEndpointAuthMethods": methods[:2]} if methods else {})


def builtin_endpoints(vendor: str, tenant: str | None) -> Endpoints:
    """The vendor's published OAuth 2.0 endpoints (GitHub, Google, Microsoft Entra ID, Slack documentation)."""
    if vendor == "GithubOauth2":
        return Endpoints(
            "https://github.com",
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
            auth_methods=(POST,),
        )
    if vendor == "GoogleOauth2":
        return Endpoints(
            "https://accounts.google.com",
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
            auth_methods=(POST, BASIC),
        )
    if vendor == "MicrosoftOauth2":
        base = f"https://login.microsoftonline.com/{tenant or 'common'}"
        return Endpoints(f"{base}/v2.0", f"{base}/oauth2/v2.0/authorize", f"{base}/oauth2/v2.0/token", auth_methods=(POST, BASIC))
    if vendor == "SlackOauth2":
        return Endpoints(
            "https://slack.com", "https://slack.com/oauth/v2/authorize", "https://slack.com/api/oauth.v2.access", auth_methods=(POST, BASIC)
        )
    raise KeyError(vendor)


def choose_auth_method(configured: str | None, endpoints: Endpoints) -> str:
    """The configured method; without one, client_secret_basic if the server lists it (or lists none), else client_secret_post."""
    if configured is not None:
        return AUTH_METHODS[configured]
    listed = [m for m in endpoints.auth_methods if m in (BASIC, POST)]
    return BASIC if not listed or BASIC in listed else POST


@dataclass(frozen=True)
class SecretSource:
    """Where the client secret comes from: by value (MANAGED), or a Secrets Manager secret and JSON key (EXTERNAL)."""

    source: str
    arn: str
    value: str | None = None
    secret_id: str | None = None
    json_key: str | None = None


class SecretMissing(KeyError):
    """No secret with this id or ARN."""


class SecretKeyMissing(KeyError):
    """The secret is not a JSON object with this key."""


# (secretId, jsonKey) -> (the secret's ARN, the value under jsonKey); raises SecretMissing or SecretKeyMissing.
SecretReader = Callable[[str, str], tuple[str, str]]


def dict_secret_reader(secrets: Mapping[str, tuple[str, Mapping[str, str]]]) -> SecretReader:
    """A reader over `{secretId or ARN: (ARN, {jsonKey: value})}`: a Secrets Manager stand-in for tests."""

    def read(secret_id: str, json_key: str) -> tuple[str, str]:
        if secret_id not in secrets:
            raise SecretMissing(secret_id)
        arn, values = secrets[secret_id]
        if json_key not in values:
            raise SecretKeyMissing(json_key)
        return arn, values[json_key]

    return read


def secretsmanager_reader(endpoint_url: str | None = None, region: str = "us-east-1", *, client: Any = None) -> SecretReader:
    """A reader over Secrets Manager through boto3 (`AWS_ENDPOINT_URL_SECRETS_MANAGER`, e.g. moto's server),
    or through `client`, a boto3 Secrets Manager client made by the caller (the local stack's, with its own keys)."""
    if client is None:
        import boto3  # noqa: PLC0415 - only the EXTERNAL path needs a Secrets Manager client

        client = boto3.client("secretsmanager", endpoint_url=endpoint_url, region_name=region)

    def read(secret_id: str, json_key: str) -> tuple[str, str]:
        try:
            answer = client.get_secret_value(SecretId=secret_id)
        except client.exceptions.ResourceNotFoundException as exc:
            raise SecretMissing(secret_id) from exc
        try:
            values = json.loads(answer.get("SecretString") or "null")
            return str(answer["ARN"]), str(values[json_key])
        except (ValueError, TypeError, KeyError) as exc:
            raise SecretKeyMissing(json_key) from exc

    return read


def token_request(url: str, form: dict[str, str], client_id: str, secret: str, method: str) -> urllib.request.Request:
    """A token endpoint request authenticating the client by `method` (RFC 6749 section 2.3.1)."""
    if method == POST:
        form = form | {"client_id": client_id, "client_secret": secret}
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), headers={"accept": "application/json"})  # noqa: S310
    request.add_header("content-type", "application/x-www-form-urlencoded")
    if method == BASIC:  # the form-urlencoded id and secret, joined by a colon, in base64
        pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
        request.add_header("authorization", "Basic " + base64.b64encode(pair.encode()).decode())
    return request


def read_json(request: urllib.request.Request | str) -> dict[str, Any]:
    """Send `request` (or GET a URL) and parse a JSON object answer."""
    if isinstance(request, str):
        request = urllib.request.Request(request, headers={"accept": "application/json"})  # noqa: S310 - configured URLs
    with urllib.request.urlopen(request, timeout=OUTBOUND_TIMEOUT_S) as response:  # noqa: S310
        parsed = json.loads(response.read())
    if not isinstance(parsed, dict):
        raise ValueError("expected a JSON object")
    return parsed
