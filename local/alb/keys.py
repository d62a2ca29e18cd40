"""ALB-format identity tokens and the public-key endpoint that serves their keys.

An ALB signs `x-amzn-oidc-data` with ES256 and publishes the PEM public key at
`https://public-keys.auth.elb.<region>.amazonaws.com/<kid>`. Its tokens differ from common JWTs in
two ways that matter to verifiers: the header carries `signer`, `iss`, `client` and `exp`, and every
segment is base64url *with* `=` padding. This module produces exactly that, for the local stack and
for tests, and serves the keys over HTTP on loopback.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from local.serving import JsonHandler, LoopbackServer


def padded_b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


@dataclass
class AlbSigningKey:
    """One ES256 key pair with a UUID kid, as an ALB holds."""

    kid: str = field(default_factory=lambda: str(uuid.uuid4()))
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, signing_input: bytes) -> bytes:
        """ES256 signature in JOSE form: r and s, 32 bytes each."""
        r, s = decode_dss_signature(self.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def mint(
        self,
        *,
        sub: str,
        signer: str,
        issuer: str,
        client_id: str,
        email: str | None = None,
        lifetime_s: int = 120,
        now: float | None = None,
        header: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """An `x-amzn-oidc-data` value. `header`/`claims` override or add fields (for negative tests)."""
        exp = int(now if now is not None else time.time()) + lifetime_s
        head: dict[str, Any] = {
            "typ": "JWT",
            "kid": self.kid,
            "alg": "ES256",
            "iss": issuer,
            "client": client_id,
            "signer": signer,
            "exp": exp,
        }
        head.update(header or {})
        body: dict[str, Any] = {"sub": sub, "exp": exp, "iss": issuer, "username": sub}
        if email is not None:
            body["email"] = email
            body["email_verified"] = "true"
        body.update(claims or {})
        signing_input = f"{padded_b64url(json.dumps(head).encode())}.{padded_b64url(json.dumps(body).encode())}"
        return f"{signing_input}.{padded_b64url(self.sign(signing_input.encode('ascii')))}"


class KeyServer:
    """Serves PEM public keys at `/<kid>` on loopback, like the regional ALB key endpoint.

    `delay_s`, `drip_s` and `status` simulate a slow or failing endpoint; `requests` counts fetches per path.
    """

    def __init__(self, keys: list[AlbSigningKey] | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.keys: dict[str, bytes] = {key.kid: key.public_pem() for key in keys or []}
        self.delay_s = 0.0
        self.drip_s = 0.0  # pause between body bytes: a slow-drip endpoint
        self.status: int | None = None
        self.requests: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests[self.path] = server.requests.get(self.path, 0) + 1
                if server.delay_s:
                    time.sleep(server.delay_s)
                pem = server.keys.get(self.path.lstrip("/"))
                status = server.status or (200 if pem is not None else 404)
                body = pem if status == 200 and pem is not None else b"not found"
                self.send_response(status)
                self.send_header("content-type", "application/x-pem-file" if status == 200 else "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if server.drip_s:
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(server.drip_s)
                else:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = LoopbackServer(Handler, host=host, port=port, name="alb-key-server")

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def add(self, key: AlbSigningKey) -> None:
        self.keys[key.kid] = key.public_pem()

    def fetches(self, kid: str) -> int:
        return self.requests.get(f"/{kid}", 0)

    def total_fetches(self) -> int:
        return sum(self.requests.values())

    def start(self) -> KeyServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> KeyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
