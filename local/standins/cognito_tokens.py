"""Cognito-shaped access tokens and the JWKS endpoint that serves their keys, for tests.

A Cognito user pool signs its tokens with RS256 and publishes the public keys as a JWKS at
`<issuer>/.well-known/jwks.json`. `CognitoSigningKey.mint` produces access tokens with the claims a
pool puts in them (`token_use`, `client_id`, `scope`, `username`…), in the common JWT format
(unpadded base64url). `JwksServer` serves the keys over HTTP on loopback and can be told to fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JWKS_PATH = "/.well-known/jwks.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def encode_segment(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class CognitoSigningKey:
    """One RS256 key pair with a kid, as a user pool holds."""

    kid: str = field(default_factory=lambda: b64url(uuid.uuid4().bytes))
    private_key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, str]:
        numbers = self.private_key.public_key().public_numbers()
        return {"kid": self.kid, "alg": "RS256", "kty": "RSA", "use": "sig", "e": _uint(numbers.e), "n": _uint(numbers.n)}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, signing_input: bytes) -> bytes:
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())

    def claims(
        self,
        *,
        sub: str,
        issuer: str,
        client_id: str,
        scopes: tuple[str, ...],
        username: str | None = None,
        lifetime_s: int = 3600,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The claims of a Cognito access token."""
        issued = int(time.time() if now is None else now)
        return {
            "sub": sub,
            "iss": issuer,
            "client_id": client_id,
            "origin_jti": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "token_use": "access",
            "scope": " ".join(scopes),
            "auth_time": issued,
            "exp": issued + lifetime_s,
            "iat": issued,
            "jti": str(uuid.uuid4()),
            "username": username or sub,
        }

    def mint(
        self,
        *,
        sub: str,
        issuer: str,
        client_id: str,
        scopes: tuple[str, ...],
        username: str | None = None,
        lifetime_s: int = 3600,
        now: float | None = None,
        header: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        """An access token. `header`/`claims` override or add fields and `drop` removes claims (negative tests)."""
        body = self.claims(sub=sub, issuer=issuer, client_id=client_id, scopes=scopes, username=username, lifetime_s=lifetime_s, now=now)
        body.update(claims or {})
        for name in drop:
            body.pop(name, None)
        head: dict[str, Any] = {"kid": self.kid, "alg": "RS256"}
        head.update(header or {})
        signing_input = f"{encode_segment(head)}.{encode_segment(body)}"
        return f"{signing_input}.{b64url(self.sign(signing_input.encode('ascii')))}"

    def mint_hs256_with_public_key(self, payload: Mapping[str, Any]) -> str:
        """The classic algorithm-confusion forgery: HMAC keyed with the (public) RSA key."""
        signing_input = f"{encode_segment({'kid': self.kid, 'alg': 'HS256'})}.{encode_segment(payload)}"
        mac = hmac.new(self.public_pem(), signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"


class JwksServer:
    """Serves `{"keys": [...]}` at `<prefix>/.well-known/jwks.json` on loopback, like a user pool.

    `status`, `body` and `delay_s` simulate a failing or slow endpoint; `fetches` counts requests.
    """

    def __init__(self, keys: list[CognitoSigningKey] | None = None, *, prefix: str = "/eu-west-1_Demo") -> None:
        self.keys = list(keys or [])
        self.prefix = prefix
        self.status: int | None = None
        self.body: bytes | None = None
        self.delay_s = 0.0
        self.fetches = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                with server._lock:
                    server.fetches += 1
                if server.delay_s:
                    time.sleep(server.delay_s)
                if self.path != server.prefix + JWKS_PATH:
                    status, body = 404, b'{"message":"not found"}'
                else:
                    status = server.status or 200
                    body = server.body if server.body is not None else json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="jwks-server", daemon=True)

    @property
    def issuer(self) -> str:
        """An issuer URL whose JWKS this server answers (http: only for the local profile)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{self.prefix}"

    @property
    def url(self) -> str:
        return self.issuer + JWKS_PATH

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
