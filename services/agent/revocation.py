"""Revoking a grant at the provider, on disconnect: with the token alone where the provider allows it, and
with the OAuth client's own credentials where the deployment enabled that for the provider.

The agent holds a person's access token only for the length of a call. It holds the OAuth client's secret
only where a provider's configuration sets `revoke_on_disconnect` (the `revoke` object of its `PROVIDERS`
entry): then it reads the secret from Secrets Manager for the one revocation call and forgets it (read
2026-12-07):

| kind        | how                                                                                |
|-------------|------------------------------------------------------------------------------------|
| google      | `POST https://oauth2.googleapis.com/revoke`, form `token=<access token>` ("Using OAuth 2.0 to Access Google APIs", Revoking a token: revoking an access token also revokes its refresh token) |
| slack       | `POST https://slack.com/api/auth.revoke` with the token as bearer (Slack API method `auth.revoke`) |
| github      | with the client's credentials when `revoke_on_disconnect` is set in the provider's configuration: `DELETE {api}/applications/{client_id}/grant`, HTTP Basic client id and secret, JSON `{"access_token": ...}`, 204 ("Delete an app authorization", REST API 2022-11-28); otherwise not offered |
| custom-oidc | with the client's credentials when `revoke_on_disconnect` is set in the provider's configuration: RFC 7009 `POST <endpoint>`, form `token=<access token>&token_type_hint=access_token`, HTTP Basic client id and secret each form-urlencoded first (RFC 6749 section 2.3.1), 200 (RFC 7009 section 2.2: also for a token the server no longer knows); otherwise not offered |

Elsewhere it is not offered, and the person is told where to remove the app's access themselves: RFC 7009
endpoints require the client's own credentials (section 2.1), and Cognito (the demo) revokes refresh tokens
only; Microsoft's identity platform has no revocation endpoint for a consent.

Whatever the provider does, the disconnect is already recorded and no task uses the old grant again: every
failure here (the secret unreadable, the network, any other answer) is `failed`, never an exception.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, quote_plus

import anyio
import httpx

from services.agent.settings import ProviderSpec, RevokeSpec

Outcome = Literal["revoked", "not_offered", "nothing_stored", "failed"]
REVOCATION_URLS = {"google": "https://oauth2.googleapis.com/revoke", "slack": "https://slack.com/api/auth.revoke"}
REVOKE_TIMEOUT_S = 5.0
GITHUB_HEADERS = {"accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28"}
# A Secrets Manager client (boto3), built on first use and shared: `LazyClient(...).get` in the runtime.
SecretsClient = Callable[[], Any]

_log = logging.getLogger("agent")


@dataclass(frozen=True)
class Revocation:
    outcome: Outcome

    def message(self, provider: ProviderSpec) -> str:
        """What the person reads after a disconnect: what happened, and what is left to do where."""
        name = provider.display_name
        done = f"Disconnected. The agent will not use your {name} account again unless you connect it again."
        if self.outcome == "revoked":
            return f"{done} {name} has also withdrawn the permission it gave."
        if self.outcome == "nothing_stored":
            return done
        if provider.kind in ("demo", "custom-oidc"):
            # No page where the person withdraws it: the grant stays unused until it expires at the provider.
            if self.outcome == "failed":
                return f"{done} {name} could not be asked to withdraw the permission it gave: it keeps it until it expires there; this app will not use it."
            return f"{done} {name} keeps the permission it gave until it expires there; this app will not use it."
        if self.outcome == "failed":
            return f"{done} {name} could not be asked to withdraw the permission: remove this app in your {name} account settings."
        return f"{done} To remove the permission at {name} as well, remove this app in your {name} account settings."


def revocation_url(provider: ProviderSpec) -> str | None:
    """Where this provider revokes a token on the token holder's request alone, if it does."""
    return provider.revocation_url or REVOCATION_URLS.get(provider.kind)


def revocation_offered(provider: ProviderSpec) -> bool:
    """Whether a disconnect asks this provider to revoke: with the token alone, or with the client's credentials."""
    return provider.revoke is not None or revocation_url(provider) is not None


async def revoke(http: httpx.AsyncClient, provider: ProviderSpec, token: str, *, secrets: SecretsClient, github_api_url: str) -> Revocation:
    """Ask the provider to revoke `token` (and the grant behind it). Never raises; never logs the token or a secret.

    `github_api_url` is the agent's default GitHub API, for a github provider without `api_url`."""
    if provider.revoke is not None:
        github_api = provider.api_url or github_api_url
        return await _revoke_as_client(http, provider, token, spec=provider.revoke, secrets=secrets, github_api=github_api)
    url = revocation_url(provider)
    if url is None:
        return Revocation("not_offered")
    try:
        if provider.kind == "slack":
            response = await http.post(url, headers={"authorization": f"Bearer {token}"}, timeout=REVOKE_TIMEOUT_S)
            ok = response.status_code == 200 and response.json().get("ok") is True
        else:
            response = await http.post(url, data={"token": token}, timeout=REVOKE_TIMEOUT_S)
            ok = response.status_code == 200
    except (httpx.HTTPError, ValueError, AttributeError):
        return Revocation("failed")
    return Revocation("revoked" if ok else "failed")


async def _revoke_as_client(
    http: httpx.AsyncClient, provider: ProviderSpec, token: str, *, spec: RevokeSpec, secrets: SecretsClient, github_api: str
) -> Revocation:
    """The client authenticates itself with its secret, read for this one call and kept nowhere else."""
    client_secret = await _read_client_secret(secrets, spec, provider.name)
    if client_secret is None:
        return Revocation("failed")
    try:
        if spec.endpoint is None:  # method github (RevokeSpec: an endpoint exactly for rfc7009)
            response = await _github_revoke(http, github_api, spec.client_id, client_secret, token)
            revoked = response.status_code == 204
        else:
            response = await _rfc7009_revoke(http, spec.endpoint, spec.client_id, client_secret, token)
            revoked = response.status_code == 200
    except httpx.HTTPError as exc:
        _failed(provider, "network", type(exc).__name__)
        return Revocation("failed")
    if not revoked:
        _failed(provider, "refused", str(response.status_code))
        return Revocation("failed")
    return Revocation("revoked")


async def _github_revoke(http: httpx.AsyncClient, api: str, client_id: str, client_secret: str, token: str) -> httpx.Response:
    """GitHub's "Delete an app authorization": the grant goes, and every token of it."""
    url = f"{api}/applications/{quote(client_id, safe='')}/grant"
    headers = {**GITHUB_HEADERS, "authorization": _basic(client_id, client_secret)}  # plain Basic (RFC 7617)
    return await http.request("DELETE", url, json={"access_token": token}, headers=headers, timeout=REVOKE_TIMEOUT_S)


async def _rfc7009_revoke(http: httpx.AsyncClient, endpoint: str, client_id: str, client_secret: str, token: str) -> httpx.Response:
    """RFC 7009 section 2.1, the client authenticated as RFC 6749 section 2.3.1 says: each part form-urlencoded, then Basic."""
    headers = {"authorization": _basic(quote_plus(client_id), quote_plus(client_secret))}
    form = {"token": token, "token_type_hint": "access_token"}
    return await http.post(endpoint, data=form, headers=headers, timeout=REVOKE_TIMEOUT_S)


async def _read_client_secret(secrets: SecretsClient, spec: RevokeSpec, provider: str) -> str | None:
    """`GetSecretValue` in a worker thread; the value under the JSON key, or None (logged without any detail
    of the secret: a parse error's text may quote the document)."""

    def read() -> str:
        answer = secrets().get_secret_value(SecretId=spec.client_secret_arn)
        value = json.loads(answer["SecretString"])[spec.client_secret_json_key]
        if not isinstance(value, str) or not value:
            raise TypeError("not a string")
        return value

    try:
        return await anyio.to_thread.run_sync(read)
    except Exception as exc:  # boto3, botocore, JSON, a missing key: each means "cannot revoke"; none may escape
        _log.warning(
            "revocation_failed",
            extra={"event": "revocation_failed", "provider": provider, "reason": "secret_unreadable", "code": _error_code(exc)},
        )
        return None


def _error_code(exc: Exception) -> str:
    """A bounded name for why the secret could not be read: AWS's error code, or the exception's class."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str) and code.isidentifier():
            return code[:64]
    return type(exc).__name__


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _failed(provider: ProviderSpec, reason: str, code: str) -> None:
    _log.warning("revocation_failed", extra={"event": "revocation_failed", "provider": provider.name, "reason": reason, "code": code})
