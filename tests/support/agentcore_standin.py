"""A loopback HTTP stand-in for the AgentCore Identity data plane, as far as these tests need it.

A real boto3 client reaches it through `AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`, so request
serialisation, signing, retries and error parsing are botocore's own. Errors use the rest-json
shape botocore parses (`x-amzn-errortype` header plus a JSON `message`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from local.serving import JsonHandler, LoopbackServer

ERROR_STATUS = {
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "AccessDeniedException": 403,
    "UnauthorizedException": 401,
}
RAW_MESSAGE = "AGENTCORE-RAW-MESSAGE-MUST-NOT-REACH-A-PAGE"


@dataclass(frozen=True)
class Call:
    operation: str
    body: dict[str, Any]
    headers: dict[str, str]


class AgentCoreStandIn:
    def __init__(self, port: int = 0) -> None:
        self.record = True  # keep every call (tests); benchmarks only count
        self.count = 0
        self.counts: dict[str, int] = {}
        self.calls: list[Call] = []
        # Scripted answers, in order, before answering normally: an AWS error code, or one of
        # "HTML503" (a 503 with an HTML body), "CLOSE" (drop the connection unanswered),
        # "SLOW_SUCCESS" (do the work, then answer after `slow_s`: the caller's read timeout fires).
        self.failures: list[str] = []
        self.slow_s = 2.0
        self.delay_s = 0.0
        self.sessions: dict[str, str] = {}  # sessionUri -> userId that may complete it (empty: accept any)
        self.completed: set[str] = set()
        # A small token vault, enough for the agent's tests: workload tokens bound to a user, and
        # access tokens per (user, provider, scopes) once a session for them completed.
        self.workload_tokens: dict[str, str] = {}
        self.vault: dict[tuple[str, str, tuple[str, ...]], str] = {}
        self._pending: dict[str, tuple[str, str, tuple[str, ...]]] = {}
        self.custom_states: dict[str, str] = {}  # sessionUri -> customState sent with it
        self._lock = threading.Lock()
        standin = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                operation = self.path.rsplit("/", 1)[-1]
                with standin._lock:
                    standin.count += 1
                    standin.counts[operation] = standin.counts.get(operation, 0) + 1
                    if standin.record:
                        standin.calls.append(Call(operation, body, {k.lower(): v for k, v in self.headers.items()}))
                    failure = standin.failures.pop(0) if standin.failures else None
                if standin.delay_s:
                    time.sleep(standin.delay_s)
                if failure == "CLOSE":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if failure == "HTML503":
                    self.send_body(503, b"<html><body>Service Unavailable</body></html>", "text/html")
                    return
                if failure == "SLOW_SUCCESS":
                    failure = standin._complete(body) if operation == "CompleteResourceTokenAuth" else None
                    time.sleep(standin.slow_s)
                    self._send(ERROR_STATUS[failure], {"message": RAW_MESSAGE}, error=failure) if failure else self._send(200, {})
                    return
                answer: dict[str, Any] = {}
                if failure is None and operation == "CompleteResourceTokenAuth":
                    failure = standin._complete(body)
                elif failure is None and operation == "GetWorkloadAccessTokenForUserId":
                    answer = standin._workload_token(body)
                elif failure is None and operation == "token":  # GetResourceOauth2Token: /identities/oauth2/token
                    answer, failure = standin._resource_token(body)
                if failure is not None:
                    self._send(ERROR_STATUS[failure], {"message": RAW_MESSAGE}, error=failure)
                else:
                    self._send(200, answer)

            def do_GET(self) -> None:
                if self.path == "/_stats":  # benchmarks read the counters of a stand-in in another process
                    with standin._lock:
                        self._send(200, {"counts": dict(standin.counts)})
                else:
                    self._send(404, {"message": "not found"})

            def _send(self, status: int, payload: dict[str, Any], error: str | None = None) -> None:
                self.send_json(status, payload, [("x-amzn-errortype", error)] if error else [])

        self._server = LoopbackServer(Handler, port=port, name="agentcore-standin")

    def _workload_token(self, body: dict[str, Any]) -> dict[str, Any]:
        token = f"wat-{uuid.uuid4().hex}"
        with self._lock:
            self.workload_tokens[token] = str(body["userId"])
        return {"workloadAccessToken": token}

    def _resource_token(self, body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        with self._lock:
            user = self.workload_tokens.get(str(body.get("workloadIdentityToken")))
            if user is None:
                return {}, "UnauthorizedException"
            key = (user, str(body["resourceCredentialProviderName"]), tuple(body["scopes"]))
            token = self.vault.get(key)
            if token is not None and not body.get("forceAuthentication"):
                return {"accessToken": token}, None
            session = f"urn:ietf:params:oauth:request_uri:{uuid.uuid4()}"
            self._pending[session] = key
            self.sessions[session] = user
            self.custom_states[session] = str(body.get("customState", ""))
        url = f"https://idp.example.org/authorize?request_uri={session}"
        return {"authorizationUrl": url, "sessionUri": session, "sessionStatus": "IN_PROGRESS"}, None

    def expire_workload_tokens(self) -> None:
        """Every workload token issued so far now fails with UnauthorizedException."""
        with self._lock:
            self.workload_tokens.clear()

    def operation_count(self, operation: str) -> int:
        return sum(1 for call in self.calls if call.operation == operation)

    def _complete(self, body: dict[str, Any]) -> str | None:
        session, user = str(body.get("sessionUri")), body.get("userIdentifier", {}).get("userId")
        with self._lock:
            if session in self.completed:
                return "ValidationException"
            if self.sessions and self.sessions.get(session) != user:
                return "ValidationException"
            if self.record:
                self.completed.add(session)
            key = self._pending.pop(session, None)
            if key is not None:
                self.vault[key] = f"at-{key[0]}-{uuid.uuid4().hex[:8]}"
        return None

    @property
    def endpoint(self) -> str:
        return self._server.base_url

    def completions(self) -> list[Call]:
        return [call for call in self.calls if call.operation == "CompleteResourceTokenAuth"]

    def start(self) -> AgentCoreStandIn:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
