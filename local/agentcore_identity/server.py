"""HTTP front of the AgentCore Identity emulator: the rest-json wire protocol botocore speaks.

Both planes share one listener: every operation of `bedrock-agentcore` and
`bedrock-agentcore-control` used here is a POST to a distinct `/identities/...` path, so one
emulator serves `AWS_ENDPOINT_URL_BEDROCK_AGENTCORE` and `AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL`.

Besides the AWS operations it serves, for local use only:
- `GET /identities/oauth2/callback/<id>?code=&state=`: the browser-facing OAuth2 callback;
- `GET /_emulator/stats`: calls per operation; `GET /_emulator/vault`: the vault's keys with a
  digest of each stored access token (no secrets), so tests in other processes can assert the
  vault did not change; `POST /_emulator/clock` with `{"advanceSeconds": n}`: move the emulator's
  clock forward (expire sessions and tokens without waiting).
"""

from __future__ import annotations

import html
import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.agentcore_identity.faults import Faults
from local.agentcore_identity.service import CALLBACK_PATH, ApiError, CallbackError, IdentityService, Settings

# Request path -> operation name (botocore's requestUri for each operation).
ROUTES = {
    "/identities/CreateWorkloadIdentity": "CreateWorkloadIdentity",
    "/identities/UpdateWorkloadIdentity": "UpdateWorkloadIdentity",
    "/identities/GetWorkloadIdentity": "GetWorkloadIdentity",
    "/identities/CreateOauth2CredentialProvider": "CreateOauth2CredentialProvider",
    "/identities/GetOauth2CredentialProvider": "GetOauth2CredentialProvider",
    "/identities/GetWorkloadAccessToken": "GetWorkloadAccessToken",
    "/identities/GetWorkloadAccessTokenForUserId": "GetWorkloadAccessTokenForUserId",
    "/identities/GetWorkloadAccessTokenForJWT": "GetWorkloadAccessTokenForJWT",
    "/identities/oauth2/token": "GetResourceOauth2Token",
    "/identities/CompleteResourceTokenAuth": "CompleteResourceTokenAuth",
}
# botocore's modelled success codes (the Create operations answer 201).
SUCCESS_STATUS = {"CreateWorkloadIdentity": 201, "CreateOauth2CredentialProvider": 201}
CALLBACK_OPERATION = "OAuth2Callback"
PAGE_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up (timeouts in reliability tests) are expected


class Emulator:
    """An in-process AgentCore Identity emulator; a local stand-in, not AWS.

    `Emulator(port=0).start()` listens on loopback; `.base_url` is what to put in
    `AWS_ENDPOINT_URL_BEDROCK_AGENTCORE(_CONTROL)`; `.counts` counts calls per operation;
    `.faults` injects throttling, 5xx and latency; `.advance_clock(s)` moves time forward.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        session_ttl_s: float = 600.0,
        workload_token_ttl_s: float = 3600.0,
        region: str = "us-east-1",
        account: str = "123456789012",
        public_url: str | None = None,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.faults = faults or Faults()
        self.counts: Counter[str] = Counter()
        self._public_url = public_url.rstrip("/") if public_url else None
        settings = Settings(region=region, account=account, session_ttl_s=session_ttl_s, workload_token_ttl_s=workload_token_ttl_s)
        self.service = IdentityService(settings, lambda: self.base_url, clock)
        self._counts_lock = threading.Lock()
        self._httpd = _Server((host, port), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._public_url:
            return self._public_url
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Emulator:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="agentcore-identity-emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        """Stop serving and release the port; safe before start() (shutdown() would wait forever then)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def advance_clock(self, seconds: float) -> None:
        with self.service.lock:
            self.service.offset_s += seconds

    def count(self, operation: str) -> int:
        with self._counts_lock:
            return self.counts[operation]

    def vault_snapshot(self) -> dict[str, str]:
        return self.service.vault_snapshot()

    def _record(self, operation: str) -> None:
        with self._counts_lock:
            self.counts[operation] += 1


def _handler(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    service = emulator.service

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server_version = "AgentCoreIdentityEmulator/1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.send_header("x-amzn-requestid", str(time.time_ns()))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _json(self, status: int, payload: dict[str, Any], error: str | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json", {"x-amzn-errortype": error} if error else None)

        def _error(self, exc: ApiError) -> None:
            self._json(exc.status, {"message": exc.message}, error=exc.code)

        def _page(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
            page = f"<!doctype html><meta charset=utf-8><title>AgentCore Identity (local)</title><p>{html.escape(text)}</p>"
            self._send(status, page.encode(), "text/html; charset=utf-8", PAGE_HEADERS | (headers or {}))

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            raw = self._body()
            if path == "/_emulator/clock":
                emulator.advance_clock(float(json.loads(raw or b"{}").get("advanceSeconds", 0)))
                self._json(200, {"offsetSeconds": service.offset_s})
                return
            operation = ROUTES.get(path)
            if operation is None:
                self._error(ApiError("UnknownOperationException", f"No operation at {path}"))
                return
            emulator._record(operation)
            fault = emulator.faults.decide(operation)
            if fault.latency_s:
                time.sleep(fault.latency_s)
            if fault.error:
                self._error(ApiError(fault.error, f"Injected {fault.error} (local emulator fault injection)"))
                return
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise ApiError("ValidationException", "request body must be a JSON object")
                answer = getattr(service, f"op_{operation}")(body)
            except ApiError as exc:
                self._error(exc)
            except json.JSONDecodeError:
                self._error(ApiError("ValidationException", "request body is not JSON"))
            except Exception as exc:  # an emulator bug: answer like the service would, keep serving
                self._error(ApiError("InternalServerException", f"emulator error: {type(exc).__name__}"))
            else:
                self._json(SUCCESS_STATUS.get(operation, 200), answer)

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            if parts.path.startswith(CALLBACK_PATH):
                emulator._record(CALLBACK_OPERATION)
                try:
                    location = service.callback(parts.path[len(CALLBACK_PATH) :], urllib.parse.parse_qs(parts.query))
                except CallbackError as exc:
                    self._page(exc.status, exc.message)
                else:
                    self._page(302, "Redirecting.", {"location": location})
            elif parts.path == "/_emulator/stats":
                with emulator._counts_lock:
                    self._json(200, {"counts": dict(emulator.counts)})
            elif parts.path == "/_emulator/vault":
                self._json(200, {"vault": service.vault_snapshot()})
            elif parts.path in ("/", "/ping"):
                self._json(200, {"status": "ok", "service": "AgentCore Identity emulator (local stand-in)"})
            else:
                self._json(404, {"message": "not found"})

    return Handler
