"""The AgentCore Identity data plane as the service tests script it: the emulator's front over a backend that trusts its caller.

The tests of one service call the data plane with sessions they made up (no control plane, no
provider, no browser callback), so this backend keeps only what those calls need: user-bound
workload tokens (`wat-…`), a vault of access tokens (`at-<user>-…`, which the resource stand-in
reads), sessions at `https://idp.example.org/authorize?request_uri=<sessionUri>`, and completion
once, by the initiating user if the session is known (any user if none is). Every error carries
RAW_MESSAGE, so tests can check that AgentCore's text never reaches a page. Calls are recorded.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from typing import Any

from local.agentcore_identity.faults import ANY, Faults
from local.agentcore_identity.server import Call, IdentityServer
from local.agentcore_identity.service import ApiError, CallbackError

RAW_MESSAGE = "AGENTCORE-RAW-MESSAGE-MUST-NOT-REACH-A-PAGE"
VaultKey = tuple[str, str, tuple[str, ...]]  # user, provider, scopes as sent


class AgentCoreStandIn(IdentityServer):
    """The scripted data plane on loopback: its own backend, with the attributes the service tests read and set.

    `failures`: the next calls' answers, in order, before answering normally: an AWS error code, or
    "HTML503", "CLOSE", "SLOW_SUCCESS" (see faults.py). `delay_s`: added to every call. `slow_s`: how
    late SLOW_SUCCESS answers. `record = False` (benchmarks) keeps neither calls nor completions, so one
    session may complete again and again. The `_workload_token`, `_resource_token` and `_complete` steps
    are separate so a test can replace one (tests/security/test_sentinel_leaks.py plants sentinels so).
    """

    injected_message = RAW_MESSAGE

    def __init__(self, port: int = 0) -> None:
        self.sessions: dict[str, str] = {}  # sessionUri -> userId that may complete it (empty: accept any)
        self.completed: set[str] = set()
        self.workload_tokens: dict[str, str] = {}  # token -> userId
        self.vault: dict[VaultKey, str] = {}
        self.custom_states: dict[str, str] = {}  # sessionUri -> customState sent with it
        self.failed: set[str] = set()  # sessions the person declined: asked with their sessionUri, they answer FAILED
        self._pending: dict[str, VaultKey] = {}
        self._lock = threading.Lock()
        super().__init__(self, port=port, faults=Faults(), record_calls=True, name="agentcore-standin")

    @property
    def endpoint(self) -> str:
        return self.base_url

    @property
    def record(self) -> bool:
        return self.record_calls

    @record.setter
    def record(self, value: bool) -> None:
        self.record_calls = value

    @property
    def failures(self) -> tuple[str, ...]:
        """What is still queued (a snapshot: assign a list to queue faults, `.append` is not offered)."""
        return tuple(self.faults.scripted(ANY))

    @failures.setter
    def failures(self, errors: list[str]) -> None:
        self.faults.replace_script(ANY, errors)

    @property
    def delay_s(self) -> float:
        return self.faults.latency(ANY)

    @delay_s.setter
    def delay_s(self, seconds: float) -> None:
        self.faults.set(ANY, latency_s=seconds)

    def operation_count(self, operation: str) -> int:
        return sum(1 for call in self.calls if call.operation == operation)

    def completions(self) -> list[Call]:
        return [call for call in self.calls if call.operation == "CompleteResourceTokenAuth"]

    def expire_workload_tokens(self) -> None:
        """Every workload token issued so far now fails with UnauthorizedException."""
        with self._lock:
            self.workload_tokens.clear()

    # ---- the backend (IdentityBackend) -----------------------------------------------------

    def answer(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        error: str | None = None
        if operation == "GetWorkloadAccessTokenForUserId":
            answer = self._workload_token(body)
        elif operation == "GetResourceOauth2Token":
            answer, error = self._resource_token(body)
        elif operation == "CompleteResourceTokenAuth":
            error = self._complete(body)
        if error is not None:
            raise ApiError(error, RAW_MESSAGE)
        return answer

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
            asked = str(body.get("sessionUri", ""))
            if asked and asked not in self._pending:
                return {}, "ValidationException"  # a session it does not know (expired, made up), as the emulator answers
            if asked and self._pending.get(asked) == key and token is None:  # that session, still open: the same, as AWS answers
                status = "FAILED" if asked in self.failed else "IN_PROGRESS"
                return {
                    "authorizationUrl": f"https://idp.example.org/authorize?request_uri={asked}",
                    "sessionUri": asked,
                    "sessionStatus": status,
                }, None
            if token is not None and not body.get("forceAuthentication"):
                return {"accessToken": token}, None
            session = f"urn:ietf:params:oauth:request_uri:{uuid.uuid4()}"
            self._pending[session] = key
            self.sessions[session] = user
            self.custom_states[session] = str(body.get("customState", ""))
        url = f"https://idp.example.org/authorize?request_uri={session}"
        return {"authorizationUrl": url, "sessionUri": session, "sessionStatus": "IN_PROGRESS"}, None

    def _complete(self, body: dict[str, Any]) -> str | None:
        session, user = str(body.get("sessionUri")), body.get("userIdentifier", {}).get("userId")
        with self._lock:
            if session in self.completed:
                return "ValidationException"
            if self.sessions and self.sessions.get(session) != user:
                return "ValidationException"
            if self.record_calls:
                self.completed.add(session)
            key = self._pending.pop(session, None)
            if key is not None:
                self.vault[key] = f"at-{key[0]}-{uuid.uuid4().hex[:8]}"
        return None

    def callback(self, callback_id: str, query: dict[str, list[str]]) -> str:
        raise CallbackError(404, "Unknown callback.")  # the tests play the browser's return themselves

    def vault_snapshot(self) -> dict[str, str]:
        with self._lock:
            return {
                "|".join((u, p, " ".join(s))): hashlib.sha256(t.encode()).hexdigest()[:16] for (u, p, s), t in sorted(self.vault.items())
            }

    def advance_clock(self, seconds: float) -> float:
        return 0.0  # nothing here expires
