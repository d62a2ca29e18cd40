"""A tiny loopback OAuth 2.0 authorization server that consents at once: for the emulator's tests and tour.

Discovery document, an authorization endpoint that needs no person (302 back with a code at once),
and a token endpoint that checks the client secret (by the methods it is given: client_secret_post by
default, or client_secret_basic), the redirect URI and PKCE (S256), and issues opaque access and
refresh tokens (refresh tokens rotate). `client_auth` records how each token request authenticated. The person-facing
providers of the local stack are in local/idp (oidc-provider); this one is for scripts.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from local.serving import JsonHandler, LoopbackServer

CLIENT_ID = "emulator-test-client"
CLIENT_SECRET = "emulator-test-secret"  # noqa: S105 - a fixed loopback value, not a credential


@dataclass
class ProviderState:
    expires_in: int = 60
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    client_auth: list[str] = field(default_factory=list)  # per token request: client_secret_basic, client_secret_post or none
    issued: int = 0


def client_credentials(form: dict[str, str], authorization: str | None) -> tuple[str, str | None, str | None]:
    """How the client authenticated (RFC 6749 section 2.3.1), and the id and secret it sent."""
    if authorization and authorization.lower().startswith("basic "):
        try:
            pair = base64.b64decode(authorization[6:], validate=True).decode()
        except ValueError:
            return "client_secret_basic", None, None
        client_id, _, secret = pair.partition(":")
        return "client_secret_basic", urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)
    if "client_secret" in form:
        return "client_secret_post", form.get("client_id"), form.get("client_secret")
    return "none", form.get("client_id"), None


class OAuthProvider:
    def __init__(self, auth_methods: tuple[str, ...] = ("client_secret_post",)) -> None:
        self.state = ProviderState()
        self.auth_methods = auth_methods
        self._lock = threading.Lock()
        provider = self

        class Handler(JsonHandler):
            def _send(self, status: int, payload: dict[str, Any] | None = None, location: str | None = None) -> None:
                self.send_json(status, payload or {}, [("location", location)] if location else [])

            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                if parts.path == "/.well-known/openid-configuration":
                    base = provider.issuer
                    self._send(
                        200,
                        {
                            "issuer": base,
                            "authorization_endpoint": f"{base}/authorize",
                            "token_endpoint": f"{base}/token",
                            "response_types_supported": ["code"],
                            "token_endpoint_auth_methods_supported": list(provider.auth_methods),
                            "code_challenge_methods_supported": ["S256"],
                        },
                    )
                elif parts.path == "/authorize":
                    query = dict(urllib.parse.parse_qsl(parts.query))
                    with provider._lock:
                        provider.state.authorize_requests.append(query)
                    if (
                        query.get("client_id") != CLIENT_ID
                        or query.get("response_type") != "code"
                        or query.get("code_challenge_method") != "S256"
                    ):
                        self._send(400, {"error": "invalid_request"})
                        return
                    code = secrets.token_urlsafe(16)
                    with provider._lock:
                        provider.state.codes[code] = query
                    target = query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": query["state"]})
                    self._send(302, location=target)
                else:
                    self._send(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                method, client_id, secret = client_credentials(form, self.headers.get("authorization"))
                with provider._lock:
                    provider.state.token_requests.append(form)
                    provider.state.client_auth.append(method)
                    ok = method in provider.auth_methods and client_id == CLIENT_ID and secret == CLIENT_SECRET
                    status, answer = provider._token(form) if ok else (401, {"error": "invalid_client"})
                self._send(status, answer)

        self._server = LoopbackServer(Handler, name="auto-provider")

    @property
    def issuer(self) -> str:
        return self._server.base_url

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def _issue(self) -> dict[str, Any]:
        self.state.issued += 1
        refresh = f"rt-{secrets.token_hex(8)}"
        self.state.refresh_tokens.add(refresh)
        access = f"at-{self.state.issued}-{secrets.token_hex(4)}"
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "expires_in": self.state.expires_in}

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") == "authorization_code":
            request = self.state.codes.pop(form.get("code", ""), None)
            if request is None or form.get("redirect_uri") != request["redirect_uri"]:
                return 400, {"error": "invalid_grant"}
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != request["code_challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
            return 200, self._issue()
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in self.state.refresh_tokens:
                return 400, {"error": "invalid_grant"}
            self.state.refresh_tokens.discard(form["refresh_token"])  # rotate
            return 200, self._issue()
        return 400, {"error": "unsupported_grant_type"}

    def grants(self, grant_type: str) -> int:
        with self._lock:
            return sum(1 for r in self.state.token_requests if r.get("grant_type") == grant_type)

    def start(self) -> OAuthProvider:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
