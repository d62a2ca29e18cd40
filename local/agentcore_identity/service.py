"""The state and rules of the AgentCore Identity emulator, independent of HTTP.

Each public `op_*` method takes the request body botocore serialised and returns the response
body, or raises `ApiError` with an AWS error code. The HTTP layer (`server.py`) maps those to the
rest-json wire shape. This is a local stand-in, not AWS: tokens are opaque random strings held in
memory, nothing is encrypted at rest, and request signatures are not checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SESSION_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
SESSION_URI_RE = re.compile(r"urn:ietf:params:oauth:request_uri:[a-zA-Z0-9\-._~]+")
DISCOVERY_URL_RE = re.compile(r"[^\s?#]+/\.well-known/(openid-configuration|oauth-authorization-server)(/[^\s?#]+)?")
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
PROVIDER_NAME_RE = re.compile(r"[a-zA-Z0-9\-_]+")
CALLBACK_PATH = "/identities/oauth2/callback/"
OUTBOUND_TIMEOUT_S = 10.0

ERROR_STATUS = {
    "ValidationException": 400,
    "UnauthorizedException": 401,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ConflictException": 409,
    "ThrottlingException": 429,
    "InternalServerException": 500,
}


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return ERROR_STATUS.get(self.code, 400)


class CallbackError(Exception):
    """The browser-facing callback cannot continue; shown as a plain page with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class WorkloadIdentity:
    name: str
    arn: str
    allowed_return_urls: list[str]
    created: float
    updated: float


@dataclass
class Provider:
    name: str
    arn: str
    vendor: str
    client_id: str
    client_secret: str
    discovery_url: str | None
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    response_types: list[str]
    auth_methods: list[str]
    callback_id: str
    secret_arn: str
    created: float
    updated: float


@dataclass(frozen=True)
class WorkloadToken:
    workload: str
    user: str | None
    expires_at: float


_CALLBACK_NAMESPACE = uuid.UUID("6f1c3f5e-6d0b-4c1e-9d2a-3b7e8a0c5d41")


def callback_id(account: str, region: str, provider_name: str) -> str:
    """The provider's callback id. Derived from account, region and name (AWS assigns one at random)
    so a local stack can register the callback URL at its provider before the provider exists."""
    return str(uuid.uuid5(_CALLBACK_NAMESPACE, f"{account}/{region}/{provider_name}"))


VaultKey = tuple[str, str, str, tuple[str, ...]]  # workload, user, provider, sorted scopes


@dataclass
class VaultEntry:
    access_token: str
    refresh_token: str | None
    expires_at: float | None


@dataclass
class Session:
    uri: str
    key: VaultKey
    return_url: str
    custom_state: str | None
    state: str
    code_verifier: str
    authorization_url: str
    expires_at: float
    tokens: VaultEntry | None = None
    completed: bool = False
    failed: bool = False


@dataclass
class Settings:
    region: str = "us-east-1"
    account: str = "123456789012"
    session_ttl_s: float = 600.0  # AgentCore: an authorization URL and its session are valid 10 minutes
    workload_token_ttl_s: float = 3600.0
    default_token_lifetime_s: float = 3600.0  # when the provider's token response has no expires_in


def _require(body: dict[str, Any], *names: str) -> None:
    for name in names:
        if body.get(name) in (None, ""):
            raise ApiError(
                "ValidationException",
                f"1 validation error detected: Value at '{name}' failed to satisfy constraint: Member must not be null",
            )


def _b64url_nopad(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_subject(token: str) -> str:
    """The `sub` claim of a JWT, read WITHOUT verifying its signature, issuer, audience or expiry.

    Local stand-in only: the real service validates the token against the workload identity's
    configured inbound authorizer. Here any well-formed JWT with a `sub` is accepted.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ApiError("ValidationException", "userToken is not a JWT")
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise ApiError("ValidationException", "userToken payload is not base64url JSON") from exc
    sub = payload.get("sub") if isinstance(payload, dict) else None
    if not isinstance(sub, str) or not sub:
        raise ApiError("ValidationException", "userToken has no sub claim")
    return sub


def http_json(url: str, form: dict[str, str] | None = None) -> dict[str, Any]:
    """GET `url` (or POST `form` url-encoded) and parse a JSON object answer."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers={"accept": "application/json"})  # noqa: S310 - configured URLs
    if data is not None:
        request.add_header("content-type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=OUTBOUND_TIMEOUT_S) as response:  # noqa: S310
        parsed = json.loads(response.read())
    if not isinstance(parsed, dict):
        raise ValueError("expected a JSON object")
    return parsed


class IdentityService:
    """Workload identities, OAuth2 credential providers, workload tokens, sessions and the vault."""

    def __init__(self, settings: Settings, base_url: Callable[[], str], clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._base_url = base_url
        self._clock = clock
        self.offset_s = 0.0
        self.workloads: dict[str, WorkloadIdentity] = {}
        self.providers: dict[str, Provider] = {}
        self.workload_tokens: dict[str, WorkloadToken] = {}
        self.sessions: dict[str, Session] = {}
        self._by_state: dict[str, str] = {}
        self.vault: dict[VaultKey, VaultEntry] = {}
        self.lock = threading.RLock()

    def now(self) -> float:
        return self._clock() + self.offset_s

    def advance_clock(self, seconds: float) -> float:
        """Move this service's clock forward; the new offset from the wall clock."""
        with self.lock:
            self.offset_s += seconds
            return self.offset_s

    def answer(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """The response body for one AWS operation, or ApiError."""
        return dict(getattr(self, f"op_{operation}")(body))

    def _arn(self, resource: str) -> str:
        return f"arn:aws:bedrock-agentcore:{self.settings.region}:{self.settings.account}:{resource}"

    # ---- control plane -------------------------------------------------------------------

    def _workload_out(self, w: WorkloadIdentity, *, times: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"name": w.name, "workloadIdentityArn": w.arn, "allowedResourceOauth2ReturnUrls": list(w.allowed_return_urls)}
        if times:
            out |= {"createdTime": w.created, "lastUpdatedTime": w.updated}
        return out

    @staticmethod
    def _return_urls(body: dict[str, Any]) -> list[str]:
        urls = body.get("allowedResourceOauth2ReturnUrls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) and re.fullmatch(r"\w+:(/?/?)\S+", u) for u in urls):
            raise ApiError("ValidationException", "allowedResourceOauth2ReturnUrls must be a list of URLs")
        return list(urls)

    def op_CreateWorkloadIdentity(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "name")
        name = str(body["name"])
        if not NAME_RE.fullmatch(name) or not 3 <= len(name) <= 255:
            raise ApiError("ValidationException", "name must match [A-Za-z0-9_.-]+ (3-255 characters)")
        urls = self._return_urls(body)
        with self.lock:
            if name in self.workloads:
                raise ApiError("ConflictException", f"Workload identity {name} already exists")
            now = self.now()
            w = WorkloadIdentity(name, self._arn(f"workload-identity-directory/default/workload-identity/{name}"), urls, now, now)
            self.workloads[name] = w
            return self._workload_out(w, times=False)

    def _workload(self, name: str) -> WorkloadIdentity:
        w = self.workloads.get(name)
        if w is None:
            raise ApiError("ResourceNotFoundException", f"Workload identity {name} not found")
        return w

    def op_UpdateWorkloadIdentity(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "name")
        urls = self._return_urls(body)
        with self.lock:
            w = self._workload(str(body["name"]))
            w.allowed_return_urls = urls
            w.updated = self.now()
            return self._workload_out(w)

    def op_GetWorkloadIdentity(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "name")
        with self.lock:
            return self._workload_out(self._workload(str(body["name"])))

    def op_CreateOauth2CredentialProvider(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "name", "credentialProviderVendor", "oauth2ProviderConfigInput")
        name, vendor = str(body["name"]), str(body["credentialProviderVendor"])
        if not PROVIDER_NAME_RE.fullmatch(name):
            raise ApiError("ValidationException", "name must match [a-zA-Z0-9\\-_]+")
        config = body["oauth2ProviderConfigInput"].get("customOauth2ProviderConfig")
        if vendor != "CustomOauth2" or not isinstance(config, dict):
            raise ApiError(
                "ValidationException",
                "this local emulator supports credentialProviderVendor=CustomOauth2 with customOauth2ProviderConfig only",
            )
        client_id, client_secret = config.get("clientId"), config.get("clientSecret")
        if not client_id or not client_secret:
            raise ApiError("ValidationException", "clientId and clientSecret are required (clientSecretConfig is not emulated)")
        discovery = config.get("oauthDiscovery") or {}
        discovery_url = discovery.get("discoveryUrl")
        issuer, authz, token, response_types, auth_methods = self._provider_metadata(name, discovery)
        with self.lock:
            if name in self.providers:
                raise ApiError("ConflictException", f"Credential provider {name} already exists")
            now = self.now()
            suffix = secrets.token_hex(3)
            p = Provider(
                name=name,
                arn=self._arn(f"token-vault/default/oauth2credentialprovider/{name}"),
                vendor=vendor,
                client_id=str(client_id),
                client_secret=str(client_secret),
                discovery_url=discovery_url,
                issuer=issuer,
                authorization_endpoint=authz,
                token_endpoint=token,
                response_types=response_types,
                auth_methods=auth_methods,
                callback_id=callback_id(self.settings.account, self.settings.region, name),
                secret_arn=f"arn:aws:secretsmanager:{self.settings.region}:{self.settings.account}:secret:bedrock-agentcore-identity!default/oauth2/{name}-{suffix}",
                created=now,
                updated=now,
            )
            self.providers[name] = p
            out = self._provider_out(p)
            for key in ("credentialProviderVendor", "createdTime", "lastUpdatedTime"):
                out.pop(key)
            return out

    def _provider_metadata(self, name: str, discovery: dict[str, Any]) -> tuple[str, str, str, list[str], list[str]]:
        """Issuer, authorization and token endpoints, response types and auth methods: fetched from
        `discoveryUrl`, or as given in `authorizationServerMetadata`."""
        discovery_url = discovery.get("discoveryUrl")
        metadata = discovery.get("authorizationServerMetadata")
        if discovery_url:
            if not DISCOVERY_URL_RE.fullmatch(discovery_url):
                raise ApiError(
                    "ValidationException",
                    "discoveryUrl must end in /.well-known/openid-configuration or /.well-known/oauth-authorization-server",
                )
            with self.lock:
                if name in self.providers:  # fail fast, before the network
                    raise ApiError("ConflictException", f"Credential provider {name} already exists")
            try:
                doc = http_json(discovery_url)
            except (OSError, ValueError) as exc:
                raise ApiError("ValidationException", f"could not fetch the discovery document: {exc}") from None
            issuer, authz, token = doc.get("issuer"), doc.get("authorization_endpoint"), doc.get("token_endpoint")
            response_types = list(doc.get("response_types_supported") or ["code"])
            auth_methods = list(doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"])
        elif isinstance(metadata, dict):
            issuer, authz, token = metadata.get("issuer"), metadata.get("authorizationEndpoint"), metadata.get("tokenEndpoint")
            response_types = list(metadata.get("responseTypes") or ["code"])
            auth_methods = list(metadata.get("tokenEndpointAuthMethods") or ["client_secret_post"])
        else:
            raise ApiError("ValidationException", "oauthDiscovery needs discoveryUrl or authorizationServerMetadata")
        if not (isinstance(issuer, str) and isinstance(authz, str) and isinstance(token, str)):
            raise ApiError("ValidationException", "provider metadata lacks issuer, authorization_endpoint or token_endpoint")
        return issuer, authz, token, response_types, auth_methods

    def callback_url(self, p: Provider) -> str:
        return f"{self._base_url()}{CALLBACK_PATH}{p.callback_id}"

    def _provider_out(self, p: Provider) -> dict[str, Any]:
        discovery: dict[str, Any] = {
            "authorizationServerMetadata": {
                "issuer": p.issuer,
                "authorizationEndpoint": p.authorization_endpoint,
                "tokenEndpoint": p.token_endpoint,
                "responseTypes": p.response_types,
                "tokenEndpointAuthMethods": [m for m in p.auth_methods if m in ("client_secret_post", "client_secret_basic")],
            }
        }
        if p.discovery_url:
            discovery = {"discoveryUrl": p.discovery_url}
        return {
            "clientSecretArn": {"secretArn": p.secret_arn},
            "clientSecretSource": "MANAGED",
            "name": p.name,
            "credentialProviderArn": p.arn,
            "credentialProviderVendor": p.vendor,
            "callbackUrl": self.callback_url(p),
            "oauth2ProviderConfigOutput": {"customOauth2ProviderConfig": {"oauthDiscovery": discovery, "clientId": p.client_id}},
            "createdTime": p.created,
            "lastUpdatedTime": p.updated,
            "status": "READY",
        }

    def _provider(self, name: str) -> Provider:
        p = self.providers.get(name)
        if p is None:
            raise ApiError("ResourceNotFoundException", f"Credential provider {name} not found")
        return p

    def op_GetOauth2CredentialProvider(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "name")
        with self.lock:
            return self._provider_out(self._provider(str(body["name"])))

    # ---- data plane: workload access tokens ------------------------------------------------

    def _issue_workload_token(self, workload: str, user: str | None) -> dict[str, Any]:
        with self.lock:
            self._workload(workload)
            token = secrets.token_urlsafe(48)  # opaque; the binding to workload and user lives here
            self.workload_tokens[token] = WorkloadToken(workload, user, self.now() + self.settings.workload_token_ttl_s)
        return {"workloadAccessToken": token}

    def op_GetWorkloadAccessToken(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "workloadName")
        return self._issue_workload_token(str(body["workloadName"]), None)

    def op_GetWorkloadAccessTokenForUserId(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "workloadName", "userId")
        user = str(body["userId"])
        if not 1 <= len(user) <= 128:
            raise ApiError("ValidationException", "userId must be 1-128 characters")
        return self._issue_workload_token(str(body["workloadName"]), user)

    def op_GetWorkloadAccessTokenForJWT(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "workloadName", "userToken")
        # Local only: the JWT is decoded, not verified (see jwt_subject).
        return self._issue_workload_token(str(body["workloadName"]), jwt_subject(str(body["userToken"])))

    def invalidate_workload_tokens(self) -> None:
        """Every workload token issued so far now fails with UnauthorizedException."""
        with self.lock:
            self.workload_tokens.clear()

    # ---- data plane: resource tokens and sessions ------------------------------------------

    def _resolve(self, body: dict[str, Any]) -> tuple[Provider, VaultKey]:
        """Check the workload token, workload, provider and return URL; the vault key. Hold the lock."""
        scopes = body["scopes"]
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ApiError("ValidationException", "scopes must be a list of strings")
        wt = self.workload_tokens.get(str(body["workloadIdentityToken"]))
        if wt is None or wt.expires_at <= self.now():
            raise ApiError("UnauthorizedException", "The workload access token is invalid or expired")
        if wt.user is None:
            raise ApiError("ValidationException", "USER_FEDERATION needs a workload access token issued for a user")
        workload = self._workload(wt.workload)
        provider = self._provider(str(body["resourceCredentialProviderName"]))
        return_url = body.get("resourceOauth2ReturnUrl")
        if return_url is not None and return_url not in workload.allowed_return_urls:
            raise ApiError(
                "ValidationException", "resourceOauth2ReturnUrl is not in the workload identity's allowedResourceOauth2ReturnUrls"
            )
        return provider, (workload.name, wt.user, provider.name, tuple(sorted(set(scopes))))

    def _pending_session(self, session_uri: str, key: VaultKey) -> dict[str, Any] | None:
        """A caller polling with `sessionUri`: the session again while it is not completed. Hold the lock."""
        session = self.sessions.get(session_uri)
        if session is None or session.key != key:
            raise ApiError("ValidationException", "sessionUri does not match this request")
        if session.completed:
            return None  # answered from the vault
        if session.expires_at <= self.now():
            raise ApiError("ValidationException", "The session has expired")
        status = "FAILED" if session.failed else "IN_PROGRESS"
        return {"authorizationUrl": session.authorization_url, "sessionUri": session.uri, "sessionStatus": status}

    def op_GetResourceOauth2Token(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "workloadIdentityToken", "resourceCredentialProviderName", "scopes", "oauth2Flow")
        if body["oauth2Flow"] != "USER_FEDERATION":
            raise ApiError("ValidationException", "this local emulator supports oauth2Flow=USER_FEDERATION only")
        with self.lock:
            provider, key = self._resolve(body)
            if body.get("sessionUri"):
                pending = self._pending_session(str(body["sessionUri"]), key)
                if pending is not None:
                    return pending
            entry = None if body.get("forceAuthentication") else self.vault.get(key)
            if entry is not None and (entry.expires_at is None or entry.expires_at > self.now()):
                return {"accessToken": entry.access_token}
        if entry is not None and entry.refresh_token:
            refreshed = self._refresh(provider, entry)  # outside the lock: a network call
            with self.lock:
                if refreshed is not None:
                    self.vault[key] = refreshed
                    return {"accessToken": refreshed.access_token}
                if self.vault.get(key) is entry:
                    del self.vault[key]
        return_url, custom_state = body.get("resourceOauth2ReturnUrl"), body.get("customState")
        if not return_url:
            raise ApiError("ValidationException", "resourceOauth2ReturnUrl is required to start a user federation session")
        return self._start_session(provider, key, str(return_url), None if custom_state is None else str(custom_state))

    def _token_entry(self, answer: dict[str, Any], previous_refresh: str | None = None) -> VaultEntry:
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("token response has no access_token")
        lifetime = answer.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float | str) and str(lifetime) else self.settings.default_token_lifetime_s
        refresh = answer.get("refresh_token")
        return VaultEntry(access, refresh if isinstance(refresh, str) and refresh else previous_refresh, self.now() + seconds)

    def _refresh(self, provider: Provider, entry: VaultEntry) -> VaultEntry | None:
        assert entry.refresh_token is not None
        form = {
            "grant_type": "refresh_token",
            "refresh_token": entry.refresh_token,
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
        }
        try:
            return self._token_entry(http_json(provider.token_endpoint, form), entry.refresh_token)
        except (OSError, ValueError):
            return None  # refresh refused or provider down: the caller starts a new consent session

    def _start_session(self, provider: Provider, key: VaultKey, return_url: str, custom_state: str | None) -> dict[str, Any]:
        verifier = _b64url_nopad(secrets.token_bytes(32))
        challenge = _b64url_nopad(hashlib.sha256(verifier.encode()).digest())
        state = secrets.token_urlsafe(32)
        uri = SESSION_URI_PREFIX + secrets.token_urlsafe(32)
        params = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": self.callback_url(provider),
            "scope": " ".join(key[3]),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in provider.authorization_endpoint else "?"
        url = provider.authorization_endpoint + separator + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        with self.lock:
            self.sessions[uri] = Session(uri, key, return_url, custom_state, state, verifier, url, self.now() + self.settings.session_ttl_s)
            self._by_state[state] = uri
        return {"authorizationUrl": url, "sessionUri": uri, "sessionStatus": "IN_PROGRESS"}

    def callback(self, callback_id: str, query: dict[str, list[str]]) -> str:
        """Handle the provider's redirect; return the URL to send the browser to (302)."""
        with self.lock:
            provider = next((p for p in self.providers.values() if p.callback_id == callback_id), None)
            if provider is None:
                raise CallbackError(404, "Unknown callback.")
            states = query.get("state", [])
            uri = self._by_state.get(states[0]) if len(states) == 1 else None
            session = self.sessions.get(uri) if uri else None
            if session is None or session.key[2] != provider.name:
                raise CallbackError(400, "Unknown or missing state.")
            if session.expires_at <= self.now():
                raise CallbackError(400, "This authorization session has expired.")
            if session.tokens is not None or session.completed or session.failed:
                raise CallbackError(400, "This authorization session was already used.")
            if "error" in query:
                session.failed = True
                raise CallbackError(400, "The authorization server refused: " + query["error"][0])
            codes = query.get("code", [])
            if len(codes) != 1:
                raise CallbackError(400, "Missing authorization code.")
            form = {
                "grant_type": "authorization_code",
                "code": codes[0],
                "redirect_uri": self.callback_url(provider),
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,  # client_secret_post
                "code_verifier": session.code_verifier,
            }
        try:
            tokens = self._token_entry(http_json(provider.token_endpoint, form))
        except (OSError, ValueError) as exc:
            with self.lock:
                session.failed = True
            detail = f" (HTTP {exc.code})" if isinstance(exc, urllib.error.HTTPError) else ""
            raise CallbackError(502, "The code exchange at the authorization server failed" + detail + ".") from None
        with self.lock:
            session.tokens = tokens
            # Assumption: the browser is sent to the return URL with session_id=<sessionUri> and,
            # when the caller passed customState, state=<customState> (the echo production expects).
            extra = [("session_id", session.uri)]
            if session.custom_state is not None:
                extra.append(("state", session.custom_state))
            parts = urllib.parse.urlsplit(session.return_url)
            query_string = "&".join(q for q in (parts.query, urllib.parse.urlencode(extra)) if q)
            return urllib.parse.urlunsplit(parts._replace(query=query_string))

    def op_CompleteResourceTokenAuth(self, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "sessionUri", "userIdentifier")
        uri, identifier = str(body["sessionUri"]), body["userIdentifier"]
        if not SESSION_URI_RE.fullmatch(uri) or len(uri) > 1024:
            raise ApiError("ValidationException", "sessionUri is malformed")
        if not isinstance(identifier, dict) or len([k for k in ("userId", "userToken") if identifier.get(k)]) != 1:
            raise ApiError("ValidationException", "userIdentifier needs exactly one of userId or userToken")
        # Local only: userToken is decoded, not verified (see jwt_subject).
        user = str(identifier["userId"]) if identifier.get("userId") else jwt_subject(str(identifier["userToken"]))
        with self.lock:
            session = self.sessions.get(uri)
            if session is None:
                raise ApiError("ValidationException", "Unknown sessionUri")
            if session.key[1] != user:
                raise ApiError("ValidationException", "The user does not match the user who started this session")
            if session.completed:
                raise ApiError("ValidationException", "The session was already completed")
            if session.expires_at <= self.now():
                raise ApiError("ValidationException", "The session has expired")
            if session.tokens is None:
                raise ApiError("ValidationException", "The authorization for this session has not finished")
            session.completed = True
            self.vault[session.key] = session.tokens
            self._by_state.pop(session.state, None)
        return {}

    # ---- inspection for tests --------------------------------------------------------------

    def vault_snapshot(self) -> dict[str, str]:
        """`workload|user|provider|scopes` -> SHA-256 prefix of the stored access token (no secrets)."""
        with self.lock:
            return {
                "|".join((w, u, p, " ".join(s))): hashlib.sha256(e.access_token.encode()).hexdigest()[:16]
                for (w, u, p, s), e in sorted(self.vault.items())
            }
