"""The state and rules of the AgentCore Identity emulator, independent of HTTP.

Each public `op_*` method takes the request body botocore serialised and returns the response
body, or raises `ApiError` with an AWS error code. The HTTP layer (`server.py`) maps those to the
rest-json wire shape. This is a local stand-in, not AWS: tokens are opaque random strings held in
memory and nothing is encrypted at rest. With `Settings.principals`, each operation is authorized
against the caller's synthesized IAM statements (`access.py`); without, nothing is.
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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.agentcore_identity import model
from local.agentcore_identity.access import CALLER, Arns, acting_as, read_secret_as_caller, require, resources_for
from local.agentcore_identity.providers import (
    AUTH_METHODS,
    VENDOR_CONFIGS,
    Endpoints,
    SecretKeyMissing,
    SecretMissing,
    SecretReader,
    SecretSource,
    builtin_endpoints,
    choose_auth_method,
    read_json,
    token_request,
)
from local.iam.principals import AccessDenied, Principal, Principals

SESSION_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
SESSION_URI_RE = re.compile(r"urn:ietf:params:oauth:request_uri:[a-zA-Z0-9\-._~]+")
CALLBACK_PATH = "/identities/oauth2/callback/"
# CustomOauth2ProviderConfigInput members the emulator does not perform: refused, never silently ignored.
NOT_EMULATED = (
    "onBehalfOfTokenExchangeConfig",
    "privateKeyJwtConfig",
    "privateEndpoint",
    "privateEndpointOverrides",
    "certificateConfigurations",
)

ERROR_STATUS = {
    "ValidationException": 400,
    "UnauthorizedException": 401,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ConflictException": 409,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    # Before any operation: the request's signature (local.iam.sigv4), as AWS answers them.
    "MissingAuthenticationTokenException": 403,
    "IncompleteSignatureException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
}


class ApiError(Exception):
    """An AWS error: its code, message and, for ValidationException, the model's `reason` and `fieldList`."""

    def __init__(self, code: str, message: str, *, reason: str | None = None, fields: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # ValidationExceptionReason: required by both models' ValidationException.
        self.reason = reason or ("FieldValidationFailed" if code == "ValidationException" else None)
        self.fields = list(fields or [])

    @property
    def status(self) -> int:
        return ERROR_STATUS.get(self.code, 400)

    def body(self) -> dict[str, Any]:
        """The error's JSON body: `message`, and `reason` and `fieldList` for ValidationException."""
        out: dict[str, Any] = {"message": self.message}
        if self.code == "ValidationException":
            out["reason"] = self.reason
            if self.fields:
                out["fieldList"] = [{"name": name, "message": text} for name, text in self.fields]
        return out


def invalid(member: str, message: str) -> ApiError:
    """A ValidationException about one request member (its path in the body), as AWS words them."""
    return ApiError(
        "ValidationException",
        f"1 validation error detected: Value at '{member}' failed to satisfy constraint: {message}",
        fields=[(member, message)],
    )


def validate_request(operation: str, body: dict[str, Any]) -> None:
    """ValidationException for every difference between the request body and botocore's input shape."""
    found = model.problems(body, model.operation_model(operation).input_shape)
    if found:
        detail = "; ".join(f"Value at '{p.path}' failed to satisfy constraint: {p.message}" for p in found)
        raise ApiError(
            "ValidationException", f"{len(found)} validation error(s) detected: {detail}", fields=[(p.path, p.message) for p in found]
        )


class CallbackError(Exception):
    """The browser-facing callback cannot continue; shown as a page with `status` and, when the session
    is known, a link back to the application (`back_url`: the origin of its return URL)."""

    def __init__(self, status: int, message: str, back_url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.back_url = back_url


def application_root(return_url: str) -> str:
    """The application's own start page: the origin of the session's return URL, and `/`."""
    parts = urllib.parse.urlsplit(return_url)
    return f"{parts.scheme}://{parts.netloc}/"


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
    secret: SecretSource
    discovery_url: str | None
    endpoints: Endpoints
    auth_method: str  # how the client authenticates at the token endpoint: client_secret_basic or client_secret_post
    configured_auth_method: str | None  # clientAuthenticationMethod as given (CustomOauth2 only)
    callback_id: str
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
    initiator: Principal | None = None  # who asked for the token: the code exchange runs with its credentials


@dataclass
class Settings:
    region: str = "us-east-1"
    account: str = "123456789012"
    session_ttl_s: float = 600.0  # AgentCore: an authorization URL and its session are valid 10 minutes
    workload_token_ttl_s: float = 3600.0
    default_token_lifetime_s: float = 3600.0  # when the provider's token response has no expires_in
    vendor_endpoints: dict[str, Endpoints] = field(default_factory=dict)  # built-in vendor -> endpoints to use instead
    secret_reader: SecretReader | None = None  # Secrets Manager for EXTERNAL client secrets; None refuses EXTERNAL
    principals: Principals | None = None  # who may call what (local.iam); None: no IAM check


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
        # (provider name, client authentication method) -> token endpoint requests sent that way (for tests)
        self.token_requests: Counter[tuple[str, str]] = Counter()
        self.lock = threading.RLock()

    def now(self) -> float:
        return self._clock() + self.offset_s

    def advance_clock(self, seconds: float) -> float:
        """Move this service's clock forward; the new offset from the wall clock."""
        with self.lock:
            self.offset_s += seconds
            return self.offset_s

    def answer(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """The response body for one AWS operation, or ApiError; the request is checked against botocore's model first."""
        validate_request(operation, body)
        self.authorize(operation, body)
        return dict(getattr(self, f"op_{operation}")(body))

    def authorize(self, operation: str, body: dict[str, Any]) -> None:
        """AccessDeniedException unless the caller's role allows `operation` on its resources (`access.py`)."""
        workload = provider = None
        with self.lock:
            if operation == "GetResourceOauth2Token":
                token = self.workload_tokens.get(str(body.get("workloadIdentityToken")))
                workload, provider = (token.workload if token else None), str(body["resourceCredentialProviderName"])
            elif operation == "CompleteResourceTokenAuth":
                session = self.sessions.get(str(body.get("sessionUri")))
                workload, provider = (session.key[0], session.key[2]) if session else (None, None)
        arns = Arns(self.settings.region, self.settings.account)
        try:
            require(self.settings.principals, f"bedrock-agentcore:{operation}", resources_for(arns, operation, body, workload, provider))
        except AccessDenied as exc:
            raise ApiError("AccessDeniedException", exc.message) from None

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
        return [str(url) for url in body.get("allowedResourceOauth2ReturnUrls") or []]  # the model check saw each URL

    def op_CreateWorkloadIdentity(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body["name"])
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
        urls = self._return_urls(body)
        with self.lock:
            w = self._workload(str(body["name"]))
            w.allowed_return_urls = urls
            w.updated = self.now()
            return self._workload_out(w)

    def op_GetWorkloadIdentity(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._workload_out(self._workload(str(body["name"])))

    def op_CreateOauth2CredentialProvider(self, body: dict[str, Any]) -> dict[str, Any]:
        name, vendor = str(body["name"]), str(body["credentialProviderVendor"])
        member = VENDOR_CONFIGS.get(vendor)
        if member is None:
            raise invalid("credentialProviderVendor", f"this local emulator knows the vendors {sorted(VENDOR_CONFIGS)}")
        given = next(iter(body["oauth2ProviderConfigInput"]))  # the model check left exactly one member
        if given != member:
            raise invalid(f"oauth2ProviderConfigInput.{given}", f"credentialProviderVendor {vendor} takes {member}")
        config, path = body["oauth2ProviderConfigInput"][member], f"oauth2ProviderConfigInput.{member}"
        for unsupported in NOT_EMULATED:
            if unsupported in config:
                raise invalid(f"{path}.{unsupported}", "not performed by this local emulator")
        if not config.get("clientId"):
            raise invalid(f"{path}.clientId", "a client id is needed for client secret authentication")
        self._refuse_existing(name)
        secret = self._secret_source(name, config, path)
        discovery_url, endpoints = self._endpoints(vendor, config, path)
        configured = config.get("clientAuthenticationMethod")
        if configured is not None and configured not in AUTH_METHODS:
            raise invalid(f"{path}.clientAuthenticationMethod", f"this local emulator performs {sorted(AUTH_METHODS)} only")
        with self.lock:
            self._refuse_existing(name)
            now = self.now()
            p = Provider(
                name=name,
                arn=self._arn(f"token-vault/default/oauth2credentialprovider/{name}"),
                vendor=vendor,
                client_id=str(config["clientId"]),
                secret=secret,
                discovery_url=discovery_url,
                endpoints=endpoints,
                auth_method=choose_auth_method(configured, endpoints),
                configured_auth_method=configured,
                callback_id=callback_id(self.settings.account, self.settings.region, name),
                created=now,
                updated=now,
            )
            self.providers[name] = p
            out = self._provider_out(p)
            for key in ("credentialProviderVendor", "createdTime", "lastUpdatedTime"):
                out.pop(key)
            return out

    def _refuse_existing(self, name: str) -> None:
        with self.lock:
            if name in self.providers:
                raise ApiError("ConflictException", f"Credential provider {name} already exists")

    def _secret_source(self, name: str, config: dict[str, Any], path: str) -> SecretSource:
        """MANAGED: the secret given by value (AWS keeps it in a secret of its own); EXTERNAL: a secret and JSON key of ours."""
        source = config.get("clientSecretSource", "MANAGED")
        if source == "EXTERNAL":
            reference = config.get("clientSecretConfig")
            if reference is None or config.get("clientSecret"):
                raise invalid(f"{path}.clientSecretConfig", "EXTERNAL takes clientSecretConfig and no clientSecret")
            arn, _ = self.read_secret(str(reference["secretId"]), str(reference["jsonKey"]), f"{path}.clientSecretConfig")
            return SecretSource("EXTERNAL", arn, secret_id=str(reference["secretId"]), json_key=str(reference["jsonKey"]))
        if not config.get("clientSecret") or "clientSecretConfig" in config:
            raise invalid(f"{path}.clientSecret", "MANAGED takes clientSecret and no clientSecretConfig")
        suffix = secrets.token_hex(3)
        arn = f"arn:aws:secretsmanager:{self.settings.region}:{self.settings.account}:secret:bedrock-agentcore-identity!default/oauth2/{name}-{suffix}"
        return SecretSource("MANAGED", arn, value=str(config["clientSecret"]))

    def read_secret(self, secret_id: str, json_key: str, path: str) -> tuple[str, str]:
        """The EXTERNAL secret's ARN and value, read from the configured Secrets Manager."""
        if self.settings.secret_reader is None:
            raise invalid(path, "EXTERNAL client secrets need a Secrets Manager; this emulator was started without one")
        try:
            return self.settings.secret_reader(secret_id, json_key)
        except SecretMissing:
            raise ApiError("ResourceNotFoundException", f"Secrets Manager can't find the secret {secret_id}") from None
        except SecretKeyMissing:
            raise invalid(f"{path}.jsonKey", f"the secret has no JSON key {json_key}") from None

    def client_secret(self, p: Provider) -> str:
        """The client secret now: by value, or read from Secrets Manager at each use (so rotation takes effect)."""
        if p.secret.value is not None:
            return p.secret.value
        assert p.secret.secret_id is not None and p.secret.json_key is not None
        arn, value = self.read_secret(p.secret.secret_id, p.secret.json_key, "clientSecretConfig")
        try:
            read_secret_as_caller(self.settings.principals, arn, self.settings.region)
        except AccessDenied as exc:
            raise ApiError("AccessDeniedException", exc.message) from None
        return value

    def _endpoints(self, vendor: str, config: dict[str, Any], path: str) -> tuple[str | None, Endpoints]:
        """The discovery URL (if given) and the authorization server's endpoints."""
        if vendor != "CustomOauth2":
            return None, self.settings.vendor_endpoints.get(vendor) or builtin_endpoints(vendor, config.get("tenantId"))
        discovery = config["oauthDiscovery"]
        metadata = discovery.get("authorizationServerMetadata")
        if metadata is not None:
            methods = tuple(metadata.get("tokenEndpointAuthMethods") or ())
            types = tuple(metadata.get("responseTypes") or ("code",))
            return None, Endpoints(metadata["issuer"], metadata["authorizationEndpoint"], metadata["tokenEndpoint"], types, methods)
        url = str(discovery["discoveryUrl"])
        try:
            doc = read_json(url)
        except (OSError, ValueError) as exc:
            raise invalid(f"{path}.oauthDiscovery.discoveryUrl", f"could not fetch the discovery document: {exc}") from None
        issuer, authz, token = doc.get("issuer"), doc.get("authorization_endpoint"), doc.get("token_endpoint")
        if not (isinstance(issuer, str) and isinstance(authz, str) and isinstance(token, str)):
            raise invalid(f"{path}.oauthDiscovery.discoveryUrl", "the document lacks issuer, authorization_endpoint or token_endpoint")
        methods = tuple(doc.get("token_endpoint_auth_methods_supported") or ())
        return url, Endpoints(issuer, authz, token, tuple(doc.get("response_types_supported") or ("code",)), methods)

    def callback_url(self, p: Provider) -> str:
        return f"{self._base_url()}{CALLBACK_PATH}{p.callback_id}"

    def _provider_out(self, p: Provider) -> dict[str, Any]:
        discovery = {"discoveryUrl": p.discovery_url} if p.discovery_url else {"authorizationServerMetadata": p.endpoints.metadata()}
        config: dict[str, Any] = {"oauthDiscovery": discovery, "clientId": p.client_id}
        if p.configured_auth_method is not None:
            config["clientAuthenticationMethod"] = p.configured_auth_method
        out: dict[str, Any] = {
            "clientSecretArn": {"secretArn": p.secret.arn},
            "clientSecretSource": p.secret.source,
            "name": p.name,
            "credentialProviderArn": p.arn,
            "credentialProviderVendor": p.vendor,
            "callbackUrl": self.callback_url(p),
            "oauth2ProviderConfigOutput": {VENDOR_CONFIGS[p.vendor]: config},
            "createdTime": p.created,
            "lastUpdatedTime": p.updated,
            "status": "READY",
        }
        if p.secret.json_key is not None:
            out["clientSecretJsonKey"] = p.secret.json_key
        return out

    def _provider(self, name: str) -> Provider:
        p = self.providers.get(name)
        if p is None:
            raise ApiError("ResourceNotFoundException", f"Credential provider {name} not found")
        return p

    def op_GetOauth2CredentialProvider(self, body: dict[str, Any]) -> dict[str, Any]:
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
        return self._issue_workload_token(str(body["workloadName"]), None)

    def op_GetWorkloadAccessTokenForUserId(self, body: dict[str, Any]) -> dict[str, Any]:
        user = str(body["userId"])
        if not 1 <= len(user) <= 128:
            raise ApiError("ValidationException", "userId must be 1-128 characters")
        return self._issue_workload_token(str(body["workloadName"]), user)

    def op_GetWorkloadAccessTokenForJWT(self, body: dict[str, Any]) -> dict[str, Any]:
        # Local only: the JWT is decoded, not verified (see jwt_subject).
        return self._issue_workload_token(str(body["workloadName"]), jwt_subject(str(body["userToken"])))

    def invalidate_workload_tokens(self) -> None:
        """Every workload token issued so far now fails with UnauthorizedException."""
        with self.lock:
            self.workload_tokens.clear()

    # ---- data plane: resource tokens and sessions ------------------------------------------

    def _resolve(self, body: dict[str, Any]) -> tuple[Provider, VaultKey]:
        """Check the workload token, workload, provider and return URL; the vault key. Hold the lock."""
        scopes = [str(scope) for scope in body["scopes"]]  # the model check saw a list of 1-128 character strings
        wt = self.workload_tokens.get(str(body["workloadIdentityToken"]))
        if wt is None or wt.expires_at <= self.now():
            raise ApiError("UnauthorizedException", "The workload access token is invalid or expired")
        if wt.user is None:
            raise invalid("workloadIdentityToken", "USER_FEDERATION needs a workload access token issued for a user")
        workload = self._workload(wt.workload)
        provider = self._provider(str(body["resourceCredentialProviderName"]))
        return_url = body.get("resourceOauth2ReturnUrl")
        if return_url is not None and return_url not in workload.allowed_return_urls:
            raise invalid("resourceOauth2ReturnUrl", "not in the workload identity's allowedResourceOauth2ReturnUrls")
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
        if body["oauth2Flow"] != "USER_FEDERATION":
            raise invalid("oauth2Flow", "this local emulator performs USER_FEDERATION only")
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
        custom_state = body.get("customState")
        return_url = self._return_url(key[0], body.get("resourceOauth2ReturnUrl"))
        return self._start_session(provider, key, return_url, None if custom_state is None else str(custom_state))

    def _return_url(self, workload_name: str, given: str | None) -> str:
        """The URL the browser returns to. Optional in the model; without it, the workload identity's one
        allowed return URL (an assumption: AWS does not document this case), else ValidationException."""
        if given is not None:
            return given
        with self.lock:
            allowed = self._workload(workload_name).allowed_return_urls
        if len(allowed) != 1:
            raise invalid("resourceOauth2ReturnUrl", "needed when the workload identity has not exactly one allowed return URL")
        return allowed[0]

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
        form = {"grant_type": "refresh_token", "refresh_token": entry.refresh_token}
        try:
            return self._token_entry(self._token_call(provider, form), entry.refresh_token)
        except (OSError, ValueError, ApiError):
            return None  # refresh refused, provider down or secret unreadable: the caller starts a new consent session

    def _token_call(self, provider: Provider, form: dict[str, str]) -> dict[str, Any]:
        """POST `form` to the provider's token endpoint, the client authenticated by the provider's method."""
        secret = self.client_secret(provider)
        with self.lock:
            self.token_requests[(provider.name, provider.auth_method)] += 1
        return read_json(token_request(provider.endpoints.token_endpoint, form, provider.client_id, secret, provider.auth_method))

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
        endpoint = provider.endpoints.authorization_endpoint
        separator = "&" if "?" in endpoint else "?"
        url = endpoint + separator + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        with self.lock:
            expires_at = self.now() + self.settings.session_ttl_s
            self.sessions[uri] = Session(uri, key, return_url, custom_state, state, verifier, url, expires_at, initiator=CALLER.get())
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
            back = application_root(session.return_url)
            if session.expires_at <= self.now():
                raise CallbackError(400, "This authorization session has expired.", back)
            if session.tokens is not None or session.completed or session.failed:
                raise CallbackError(400, "This authorization session was already used.", back)
            if "error" in query:
                session.failed = True  # GetResourceOauth2Token with its sessionUri now answers sessionStatus FAILED
                code = query["error"][0] if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", query["error"][0]) else "an error"
                raise CallbackError(400, f"Access was not granted. The authorization server answered: {code}.", back)
            codes = query.get("code", [])
            if len(codes) != 1:
                raise CallbackError(400, "Missing authorization code.", back)
        with acting_as(session.initiator):
            tokens = self._exchange_code(provider, session, codes[0])
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

    def _exchange_code(self, provider: Provider, session: Session, code: str) -> VaultEntry:
        """The code exchange (with the PKCE verifier); a failure fails the session."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.callback_url(provider),
            "code_verifier": session.code_verifier,
        }
        try:
            return self._token_entry(self._token_call(provider, form))
        except (OSError, ValueError, ApiError) as exc:
            with self.lock:
                session.failed = True
            detail = f" (HTTP {exc.code})" if isinstance(exc, urllib.error.HTTPError) else ""
            raise CallbackError(
                502, "The code exchange at the authorization server failed" + detail + ".", application_root(session.return_url)
            ) from None

    def op_CompleteResourceTokenAuth(self, body: dict[str, Any]) -> dict[str, Any]:
        uri, identifier = str(body["sessionUri"]), body["userIdentifier"]  # the model check saw the URI and a one-member union
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
