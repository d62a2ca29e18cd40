"""HTTP front of the AgentCore Identity stand-ins: the rest-json wire protocol botocore speaks, over a backend.

Both planes share one listener: every operation of `bedrock-agentcore` and `bedrock-agentcore-control`
used here is a POST to a distinct `/identities/...` path, so one server answers
`AWS_ENDPOINT_URL_BEDROCK_AGENTCORE` and `AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL`. The backend
decides the answers: `IdentityService` (the `Emulator`, with the real service's rules) or the scripted
data plane of `local/agentcore_identity/scripted.py`. Faults, counts and recorded calls are the front's.

Besides the AWS operations it serves, for local use only:
- `GET /identities/oauth2/callback/<id>?code=&state=`: the browser-facing OAuth2 callback;
- `GET /_emulator/stats`: calls per operation, and each quota with the calls it metered and throttled
  (`quotas.py`); `GET /_emulator/vault`: the vault's keys with a
  digest of each stored access token (no secrets), so tests in other processes can assert the
  vault did not change; `POST /_emulator/clock` with `{"advanceSeconds": n}`: move the backend's
  clock forward (expire sessions and tokens without waiting).
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self

from local.agentcore_identity.access import acting_as
from local.agentcore_identity.faults import CLOSE, HTML_503, SLOW_SUCCESS, Faults
from local.agentcore_identity.providers import Endpoints, SecretReader
from local.agentcore_identity.quotas import Quotas
from local.agentcore_identity.service import CALLBACK_PATH, ApiError, CallbackError, IdentityService, Settings
from local.iam.principals import Principal, Principals, SignatureError
from local.serving import JsonHandler, LoopbackServer

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
_PAGE_CSS = (
    "body{margin:0;font:15px/1.5 'Amazon Ember',system-ui,sans-serif;background:#f2f3f3;color:#16191f}"
    "header{background:#232f3e;color:#fff;padding:.7rem 1.2rem;font-weight:700}header span{font-weight:400;color:#d5dbdb;margin-left:.5rem}"
    "main{max-width:34rem;margin:2.5rem auto;background:#fff;border-top:3px solid #d13212;padding:1.2rem 1.6rem;box-shadow:0 1px 2px #0003}"
    "h1{font-size:1.3rem;margin:.2rem 0 .8rem}a.back{display:inline-block;background:#ec7211;color:#fff;padding:.45rem 1rem;"
    "border-radius:2px;text-decoration:none;font-weight:700}"
)
PAGE_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


class IdentityBackend(Protocol):
    """What the front asks of a backend; AWS errors are raised as ApiError, callback errors as CallbackError."""

    def answer(self, operation: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def callback(self, callback_id: str, query: dict[str, list[str]]) -> str: ...

    def vault_snapshot(self) -> dict[str, str]: ...

    def advance_clock(self, seconds: float) -> float: ...


@dataclass(frozen=True)
class Call:
    """One API call as it arrived. `operation` is the request path's last segment (botocore's
    requestUri): the operation's name, except `token` for GetResourceOauth2Token."""

    operation: str
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)  # when it arrived (monotonic clock): retry spacing


class IdentityServer:
    """A backend served on loopback, with request-rate quotas, fault injection, call counts and, if asked,
    every call recorded. A call over its quota is throttled before any fault or the backend is consulted."""

    injected_message = "Injected {code} (local emulator fault injection)"

    def __init__(
        self,
        backend: IdentityBackend,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        public_url: str | None = None,
        faults: Faults | None = None,
        quotas: Quotas | None = None,
        record_calls: bool = False,
        name: str = "agentcore-identity",
        principals: Principals | None = None,
        region: str = "us-east-1",
    ) -> None:
        self.backend = backend
        self.principals = principals  # None: any signature or none; else SigV4 with a known principal's keys
        self.region = region  # the credential scope's region requests must be signed for
        self.faults = faults or Faults()
        self.quotas = quotas or Quotas()  # none set: nothing is throttled for its rate
        self.counts: Counter[str] = Counter()  # by AWS operation name
        self.calls: list[Call] = []
        self.record_calls = record_calls
        self.slow_s = 2.0  # how late a SLOW_SUCCESS fault answers
        self._public_url = public_url.rstrip("/") if public_url else None
        self._counts_lock = threading.Lock()
        handler = type("BoundIdentityHandler", (IdentityHandler,), {"front": self})
        self._server = LoopbackServer(handler, host=host, port=port, name=name)

    @property
    def base_url(self) -> str:
        return self._public_url or self._server.base_url

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def serve_forever(self) -> None:
        """Serve on this thread until `shutdown()` is called from another, then release the port."""
        try:
            self._server.httpd.serve_forever(poll_interval=0.1)
        finally:
            self._server.httpd.server_close()

    def shutdown(self) -> None:
        """End `serve_forever()`; call it from another thread (it waits for the loop to stop)."""
        self._server.httpd.shutdown()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def advance_clock(self, seconds: float) -> float:
        return self.backend.advance_clock(seconds)

    def count(self, operation: str) -> int:
        with self._counts_lock:
            return self.counts[operation]

    def stats(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self.counts)

    def vault_snapshot(self) -> dict[str, str]:
        return self.backend.vault_snapshot()

    def note_call(self, operation: str, call: Call | None = None) -> None:
        with self._counts_lock:
            self.counts[operation] += 1
            if call is not None and self.record_calls:
                self.calls.append(call)


class Emulator(IdentityServer):
    """The AgentCore Identity emulator: `IdentityService`'s rules behind the wire protocol; a local stand-in, not AWS.

    `Emulator(port=0).start()` listens on loopback; `.base_url` is what to put in
    `AWS_ENDPOINT_URL_BEDROCK_AGENTCORE(_CONTROL)`; `.counts` counts calls per operation;
    `.faults` injects errors and latency; `.quotas` throttles by request rate (`quotas.py`);
    `.advance_clock(s)` moves time forward. `vendor_endpoints`
    replaces a built-in vendor's endpoints (GithubOauth2, ...); `secret_reader` is the Secrets Manager
    EXTERNAL client secrets are read from (`providers.secretsmanager_reader()`; without one, EXTERNAL is refused).
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
        quotas: Quotas | None = None,
        clock: Callable[[], float] = time.time,
        vendor_endpoints: dict[str, Endpoints] | None = None,
        secret_reader: SecretReader | None = None,
        principals: Principals | None = None,
    ) -> None:
        settings = Settings(
            region=region,
            account=account,
            session_ttl_s=session_ttl_s,
            workload_token_ttl_s=workload_token_ttl_s,
            vendor_endpoints=dict(vendor_endpoints or {}),
            secret_reader=secret_reader,
            principals=principals,
        )
        self.service = IdentityService(settings, lambda: self.base_url, clock)
        super().__init__(
            self.service,
            host,
            port,
            public_url=public_url,
            faults=faults,
            quotas=quotas,
            name="agentcore-identity-emulator",
            principals=principals,
            region=region,
        )

    def check_iam(self, principals: Principals | None) -> None:
        """Start (or, with None, stop) checking signatures and each caller's IAM statements."""
        self.principals = self.service.settings.principals = principals


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError:
        raise ApiError("ValidationException", "request body is not JSON", reason="CannotParse") from None
    if not isinstance(body, dict):
        raise ApiError("ValidationException", "request body must be a JSON object", reason="CannotParse")
    return body


class IdentityHandler(JsonHandler):
    """One request: an AWS operation (POST), the browser callback or an inspection route (GET)."""

    front: ClassVar[IdentityServer]
    server_version = "AgentCoreIdentityEmulator/1"

    def send_body(self, status: int, data: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().send_body(status, data, content_type, [("x-amzn-requestid", str(time.time_ns())), *headers])

    def _json(self, status: int, payload: dict[str, Any], error: str | None = None) -> None:
        self.send_json(status, payload, [("x-amzn-errortype", error)] if error else [])

    def _error(self, exc: ApiError) -> None:
        self._json(exc.status, exc.body(), error=exc.code)

    def _page(self, status: int, text: str, headers: dict[str, str] | None = None, *, back_url: str | None = None) -> None:
        """A page in the manner of an AWS service page: the service's name, what happened, and a way back."""
        nonce = secrets.token_urlsafe(16)
        back = f'<p><a class="back" href="{html.escape(back_url)}">Return to the application</a></p>' if back_url else ""
        heading = "Authorization not completed" if status >= 400 else "Redirecting"
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{heading} - Amazon Bedrock AgentCore Identity (local emulator)</title><style nonce='{nonce}'>{_PAGE_CSS}</style>"
            "<header>Amazon Bedrock AgentCore Identity <span>local emulator</span></header>"
            f"<main><h1>{heading}</h1><p>{html.escape(text)}</p>{back}</main></html>"
        )
        csp = {"content-security-policy": f"default-src 'none'; style-src 'nonce-{nonce}'; frame-ancestors 'none'"}
        self.send_body(status, page.encode(), "text/html; charset=utf-8", (PAGE_HEADERS | csp | (headers or {})).items())

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if path == "/_emulator/clock":
            offset = self.front.advance_clock(float(json.loads(raw or b"{}").get("advanceSeconds", 0)))
            self._json(200, {"offsetSeconds": offset})
            return
        operation = ROUTES.get(path)
        if operation is None:
            self._error(ApiError("UnknownOperationException", f"No operation at {path}"))
            return
        try:
            body, invalid = _json_object(raw), None
        except ApiError as exc:
            body, invalid = {}, exc
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.front.note_call(operation, Call(path.rsplit("/", 1)[-1], body, headers))
        try:
            caller = self._caller(raw)
        except SignatureError as exc:
            self._error(ApiError(exc.code, exc.message))
            return
        if not self.front.quotas.admit(operation):  # AWS meters the account's rate before the operation runs
            self._error(ApiError("ThrottlingException", self.front.quotas.message(operation)))
            return
        with acting_as(caller):
            self._answer_with_faults(operation, body, invalid)

    def _caller(self, raw: bytes) -> Principal | None:
        """Who signed the request (None when the front checks no signatures)."""
        principals = self.front.principals
        if principals is None:
            return None
        # Both planes sign as `bedrock-agentcore` (the signingName of both botocore models).
        return principals.authenticate("POST", self.path, self.headers.items(), raw, scope=(self.front.region, "bedrock-agentcore"))

    def _answer_with_faults(self, operation: str, body: dict[str, Any], invalid: ApiError | None) -> None:
        fault = self.front.faults.decide(operation)
        if fault.latency_s:
            time.sleep(fault.latency_s)
        if fault.error == CLOSE:
            self.close_connection = True
            self.connection.shutdown(2)
        elif fault.error == HTML_503:
            self.send_body(503, b"<html><body>Service Unavailable</body></html>", "text/html")
        elif fault.error and fault.error != SLOW_SUCCESS:
            self._error(ApiError(fault.error, self.front.injected_message.format(code=fault.error)))
        else:
            answer = self._answer(operation, body, invalid)
            if fault.error == SLOW_SUCCESS:
                time.sleep(self.front.slow_s)  # done at the backend; the answer comes too late
            if isinstance(answer, ApiError):
                self._error(answer)
            else:
                self._json(SUCCESS_STATUS.get(operation, 200), answer)

    def _answer(self, operation: str, body: dict[str, Any], invalid: ApiError | None) -> dict[str, Any] | ApiError:
        if invalid is not None:
            return invalid
        try:
            return self.front.backend.answer(operation, body)
        except ApiError as exc:
            return exc
        except Exception as exc:  # a stand-in bug: answer like the service would, keep serving
            return ApiError("InternalServerException", f"emulator error: {type(exc).__name__}")

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path.startswith(CALLBACK_PATH):
            self.front.note_call(CALLBACK_OPERATION)
            try:
                location = self.front.backend.callback(parts.path[len(CALLBACK_PATH) :], urllib.parse.parse_qs(parts.query))
            except CallbackError as exc:
                self._page(exc.status, exc.message, back_url=exc.back_url)
            else:
                self._page(302, "Redirecting.", {"location": location})
        elif parts.path == "/_emulator/stats":
            self._json(200, {"counts": self.front.stats(), **self.front.quotas.stats()})
        elif parts.path == "/_emulator/vault":
            self._json(200, {"vault": self.front.vault_snapshot()})
        elif parts.path in ("/", "/ping"):
            self._json(200, {"status": "ok", "service": "AgentCore Identity emulator (local stand-in)"})
        else:
            self._json(404, {"message": "not found"})
