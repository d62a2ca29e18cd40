"""A loopback HTTPS stand-in for the OAuth provider's consent page, at https://idp.example.org for Chromium.

The AgentCore stand-in hands out authorization URLs on https://idp.example.org, and the session
binding service redirects the browser there. A Playwright route cannot answer that request: routes
only see the first request of a redirect chain (microsoft/playwright#33882), so the redirect would go
to the network. Instead Chromium resolves idp.example.org to this server (`--host-resolver-rules`,
which also makes every other host name unresolvable) and trusts its self-signed certificate by its
key alone (`--ignore-certificate-errors-spki-list`): the browser follows the real redirect chain,
across sites, as it does in production.

It does in one step what the person and AgentCore do after `/authorize`: the person consents, and
AgentCore redirects the browser to the session binding URL with the session and its customState.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "idp.example.org"
ORIGIN = f"https://{HOST}"


def _self_signed(host: str) -> tuple[bytes, bytes, str]:
    """PEM certificate and key for `host`, and the base64 SHA-256 of the certificate's public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # Chromium may open a connection it never uses (a preconnect) and drop it


class ProviderStandIn:
    def __init__(self) -> None:
        self.hits: list[str] = []  # every request path, with its query
        # Set by each test: where AgentCore sends the browser back, and the customState of each session.
        self.binding_url = ""
        self.custom_states: dict[str, str] = {}  # the AgentCore stand-in's, read as it fills up
        self._lock = threading.Lock()
        cert_pem, key_pem, self.spki_sha256 = _self_signed(HOST)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
            cert_file.write_bytes(cert_pem)
            key_file.write_bytes(key_pem)
            context.load_cert_chain(cert_file, key_file)
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with standin._lock:
                    standin.hits.append(self.path)
                location = standin._after_consent(self.path)
                if location is None:
                    self._send(404, b"unknown request")
                    return
                self.send_response(302)
                self.send_header("location", location)
                self.send_header("content-length", "0")
                self.send_header("cache-control", "no-store")
                self.end_headers()

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        # The handshake runs in the request's thread, so a connection left half-open blocks nothing.
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="provider-standin", daemon=True
        )

    def chromium_args(self) -> tuple[str, ...]:
        """Send idp.example.org here, resolve no other host name, and trust this server's key (only)."""
        return (
            f"--host-resolver-rules=MAP {HOST} 127.0.0.1:{self.port}, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--ignore-certificate-errors-spki-list={self.spki_sha256}",
        )

    def serve(self, binding_url: str, custom_states: dict[str, str]) -> None:
        with self._lock:
            self.hits.clear()
            self.binding_url, self.custom_states = binding_url, custom_states

    def authorize_hits(self) -> list[str]:
        with self._lock:
            return [hit for hit in self.hits if urlsplit(hit).path == "/authorize"]

    def _after_consent(self, path: str) -> str | None:
        url = urlsplit(path)
        sessions = parse_qs(url.query).get("request_uri", [])
        if url.path != "/authorize" or len(sessions) != 1 or not self.binding_url:
            return None
        state = self.custom_states.get(sessions[0])
        if state is None:
            return None
        return f"{self.binding_url}?{urlencode({'session_id': sessions[0], 'state': state})}"

    def start(self) -> ProviderStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
