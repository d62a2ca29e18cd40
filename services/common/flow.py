"""The consent flow as the browser carries it: the signed flow token and the binding cookies.

* Flow token (agent → browser → `/oauth2/start`): who started the flow, the AgentCore sessionUri,
  the authorization URL to send the browser to, provider (AgentCore's credential provider name, and
  the one name people see for it) and scopes; valid at most 10 minutes.
* Binding cookie (`/oauth2/start` → browser → `/oauth2/session-binding`): this browser started the
  flow for this sessionUri and this user. One cookie per flow, named after the session's digest, so
  two consents in progress in one browser do not overwrite each other.
* Bound cookie: the flow completed in this browser, so a reload shows the success page again without
  a second AgentCore call.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.common.alb_identity import AlbIdentity
from services.common.signed import Keyring, SignedValueError, digest, matches_digest

FLOW_TTL_MAX_S = 600  # AgentCore's authorization URL and session live 10 minutes
MAX_FLOW_TOKEN_CHARS = 8192
MAX_COOKIE_CHARS = 1024
MAX_SESSION_URI_CHARS = 1024
MAX_AUTHORIZATION_URL_CHARS = 4096
SESSION_URI = re.compile(r"urn:ietf:params:oauth:request_uri:[A-Za-z0-9\-._~]+")
BINDING_COOKIE_PREFIX = "__Host-agentcore-binding-"
BOUND_COOKIE_PREFIX = "__Host-agentcore-bound-"
_FLOW_PURPOSE = "flow-token"
_BINDING_PURPOSE = "binding-cookie"
_BOUND_PURPOSE = "bound-cookie"
_PROVIDER = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,256}")  # RFC 6749 scope-token
MAX_DISPLAY_NAME_CHARS = 40
_CONNECTION = re.compile(r"[a-z][a-z0-9-]{0,19}")  # a configured provider name (services.common.connections)


class FlowError(Exception):
    """A flow token or cookie was refused. `reason`: malformed, bad_signature, unknown_key, expired, other_session, other_user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_custom_state() -> tuple[str, str]:
    """A fresh secret for AgentCore's `customState`, and the flow id derived from it.

    The secret goes only to AgentCore (server to server), which sends it back on the return URL.
    The browser carries only the flow id (its digest), in the flow token and the binding cookie, so
    whoever holds the cookie cannot produce the `state` that AgentCore's redirect carries.
    """
    custom_state = secrets.token_urlsafe(32)
    return custom_state, flow_id_for(custom_state)


def flow_id_for(custom_state: str) -> str:
    return digest(custom_state, 32)


def is_session_uri(value: str) -> bool:
    return len(value) <= MAX_SESSION_URI_CHARS and SESSION_URI.fullmatch(value) is not None


def is_safe_authorization_url(url: str) -> bool:
    """An absolute https URL (http only on loopback, for the local stack), no credentials, no control characters."""
    if len(url) > MAX_AUTHORIZATION_URL_CHARS or not url.isascii() or not url.isprintable() or any(c.isspace() for c in url) or "\\" in url:
        return False
    parts = urlsplit(url)
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and _is_loopback(parts.hostname)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class FlowToken:
    issuer: str
    sub: str
    session_uri: str
    authorization_url: str
    provider: str
    scopes: tuple[str, ...]
    flow_id: str
    issued_at: int
    expires_at: int
    display_name: str = ""  # the provider's name on every page ("Demo Notes"); empty in older tokens
    connection: str = ""  # the configured provider name the connections registry keys on ("notes"); empty in older tokens
    generation: int = 0  # the registry record's generation when the flow was issued (0: no record)

    def owned_by(self, identity: AlbIdentity) -> bool:
        return self.issuer == identity.issuer and self.sub == identity.sub

    @property
    def shown_name(self) -> str:
        """What the pages call the provider: its display name, else the credential provider's name."""
        return self.display_name or self.provider


def issue_flow_token(
    keyring: Keyring,
    *,
    identity: AlbIdentity,
    session_uri: str,
    authorization_url: str,
    provider: str,
    scopes: tuple[str, ...],
    flow_id: str,
    now: int,
    ttl_s: int = FLOW_TTL_MAX_S,
    display_name: str = "",
    connection: str = "",
    generation: int = 0,
) -> str:
    """Sign a flow token (the agent's side). Refuses values the start endpoint would refuse."""
    if not is_session_uri(session_uri):
        raise ValueError("session URI does not match AgentCore's pattern")
    if not is_safe_authorization_url(authorization_url):
        raise ValueError("authorization URL must be absolute https without credentials")
    if not _is_display_name(display_name):
        raise ValueError(f"display name must be at most {MAX_DISPLAY_NAME_CHARS} printable characters")
    if connection and not _CONNECTION.fullmatch(connection):
        raise ValueError("connection must be a configured provider name such as notes")
    if generation < 0:
        raise ValueError("generation must not be negative")
    payload: dict[str, object] = {
        "iss": identity.issuer,
        "sub": identity.sub,
        "sid": session_uri,
        "url": authorization_url,
        "prv": provider,
        "scp": list(scopes),
        "fid": flow_id,
        "iat": now,
        "exp": now + min(ttl_s, FLOW_TTL_MAX_S),
    }
    if display_name:
        payload["dsp"] = display_name
    if connection:
        payload["nam"] = connection
    if generation:
        payload["gen"] = generation
    return keyring.sign(_FLOW_PURPOSE, payload)


def _is_display_name(value: str) -> bool:
    return len(value) <= MAX_DISPLAY_NAME_CHARS and value.isprintable()


def read_flow_token(keyring: Keyring, token: str, *, now: int) -> FlowToken:
    """Verify and decode a flow token (the start endpoint's side)."""
    try:
        payload = keyring.verify(_FLOW_PURPOSE, token, max_chars=MAX_FLOW_TOKEN_CHARS)
    except SignedValueError as exc:
        raise FlowError(exc.reason) from exc
    try:
        flow = FlowToken(
            issuer=_text(payload, "iss"),
            sub=_text(payload, "sub"),
            session_uri=_text(payload, "sid"),
            authorization_url=_text(payload, "url"),
            provider=_text(payload, "prv"),
            scopes=tuple(_scopes(payload.get("scp"))),
            flow_id=_text(payload, "fid"),
            issued_at=_int(payload, "iat"),
            expires_at=_int(payload, "exp"),
            display_name=_optional_text(payload, "dsp"),
            connection=_optional_text(payload, "nam"),
            generation=_optional_int(payload, "gen"),
        )
    except (KeyError, TypeError) as exc:
        raise FlowError("malformed") from exc
    if (
        not is_session_uri(flow.session_uri)
        or not is_safe_authorization_url(flow.authorization_url)
        or not _PROVIDER.fullmatch(flow.provider)
        or not _is_display_name(flow.display_name)
        or (flow.connection and not _CONNECTION.fullmatch(flow.connection))
        or flow.generation < 0
        or flow.expires_at - flow.issued_at > FLOW_TTL_MAX_S
    ):
        raise FlowError("malformed")  # signed by us, so this means a bug or a leaked key: refuse all the same
    if now >= flow.expires_at:
        raise FlowError("expired")
    return flow


@dataclass(frozen=True, slots=True)
class BrowserBinding:
    """What a binding or bound cookie proves: this browser, this session, this user, until `expires_at`."""

    provider: str
    expires_at: int
    flow_id: str | None = None

    def state_matches(self, state: str) -> bool:
        """Whether `state` (AgentCore's echo of customState) belongs to this flow."""
        return self.flow_id is not None and matches_digest(state, self.flow_id, 32)


def binding_cookie_name(session_uri: str) -> str:
    return BINDING_COOKIE_PREFIX + digest(session_uri, 12)


def bound_cookie_name(session_uri: str) -> str:
    return BOUND_COOKIE_PREFIX + digest(session_uri, 12)


def issue_binding_cookie(keyring: Keyring, *, flow: FlowToken) -> str:
    return _issue_cookie(
        keyring,
        _BINDING_PURPOSE,
        session_uri=flow.session_uri,
        user_key=f"{flow.issuer}\n{flow.sub}",
        provider=flow.shown_name,
        expires_at=flow.expires_at,
        flow_id=flow.flow_id,
    )


def issue_bound_cookie(keyring: Keyring, *, session_uri: str, identity: AlbIdentity, provider: str, expires_at: int) -> str:
    return _issue_cookie(
        keyring, _BOUND_PURPOSE, session_uri=session_uri, user_key=identity.user_key, provider=provider, expires_at=expires_at
    )


def read_binding_cookie(keyring: Keyring, value: str, *, session_uri: str, identity: AlbIdentity, now: int) -> BrowserBinding:
    return _read_cookie(keyring, _BINDING_PURPOSE, value, session_uri=session_uri, identity=identity, now=now)


def read_bound_cookie(keyring: Keyring, value: str, *, session_uri: str, identity: AlbIdentity, now: int) -> BrowserBinding:
    return _read_cookie(keyring, _BOUND_PURPOSE, value, session_uri=session_uri, identity=identity, now=now)


def _issue_cookie(
    keyring: Keyring, purpose: str, *, session_uri: str, user_key: str, provider: str, expires_at: int, flow_id: str | None = None
) -> str:
    payload: dict[str, object] = {"s": digest(session_uri, 32), "u": digest(user_key, 32), "p": provider, "e": expires_at}
    if flow_id is not None:
        payload["f"] = flow_id
    return keyring.sign(purpose, payload)


def _read_cookie(keyring: Keyring, purpose: str, value: str, *, session_uri: str, identity: AlbIdentity, now: int) -> BrowserBinding:
    try:
        payload = keyring.verify(purpose, value, max_chars=MAX_COOKIE_CHARS)
        session_digest, user_digest = _text(payload, "s"), _text(payload, "u")
        flow_id = payload.get("f")
        binding = BrowserBinding(
            provider=_text(payload, "p"), expires_at=_int(payload, "e"), flow_id=flow_id if isinstance(flow_id, str) else None
        )
    except SignedValueError as exc:
        raise FlowError(exc.reason) from exc
    except (KeyError, TypeError) as exc:
        raise FlowError("malformed") from exc
    if session_digest != digest(session_uri, 32):
        raise FlowError("other_session")
    if user_digest != digest(identity.user_key, 32):
        raise FlowError("other_user")
    if now >= binding.expires_at:
        raise FlowError("expired")
    return binding


def _text(payload: dict[str, object], key: str) -> str:
    value = payload[key]
    if not isinstance(value, str) or not value:
        raise TypeError(key)
    return value


def _optional_text(payload: dict[str, object], key: str) -> str:
    value = payload.get(key, "")
    if not isinstance(value, str):
        raise TypeError(key)
    return value


def _optional_int(payload: dict[str, object], key: str) -> int:
    return _int(payload, key) if key in payload else 0


def _int(payload: dict[str, object], key: str) -> int:
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(key)
    return value


def _scopes(value: object) -> list[str]:
    if not isinstance(value, list) or len(value) > 32 or not all(isinstance(s, str) and _SCOPE.fullmatch(s) for s in value):
        raise TypeError("scp")
    return list(value)
