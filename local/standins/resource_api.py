"""A loopback stand-in for the external API a tool calls (the demo API's routes, GitHub's two).

It accepts the access tokens the scripted AgentCore stand-in (`local/agentcore_identity/scripted.py`)
hands out (`at-<user>-…`), answers as that user, and refuses revoked tokens with 401. It records which token each request carried, so tests can check
that a user's token is only ever used for that user.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from local.serving import JsonHandler, LoopbackServer


class ResourceStandIn:
    """The server and what it saw; tests set `revoked`, `delay_s`, `set_cookie`, `huge` and `unavailable`."""

    def __init__(self) -> None:
        self.revoked: set[str] = set()
        self.seen: list[tuple[str, str]] = []  # (path, token)
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.delay_s = 0.0
        self.record = True
        self.set_cookie = False  # answer with a Set-Cookie naming the caller, like a session-minded API
        self.huge = False  # /notes answers far more than a tool may read
        self.unavailable: list[str] = []  # Retry-After values: answer 503 with each, in order, before answering normally
        self.cookies_seen: list[str] = []
        self._lock = threading.Lock()
        handler = type("BoundResourceHandler", (ResourceHandler,), {"standin": self})
        self._server = LoopbackServer(handler, port=0, name="resource-standin")

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def start(self) -> ResourceStandIn:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


class ResourceHandler(JsonHandler):
    """The external API's routes, answered as the user the bearer token names."""

    standin: ClassVar[ResourceStandIn]

    def _user(self) -> str | None:
        auth = self.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        if self.headers.get("cookie"):
            self.standin.cookies_seen.append(str(self.headers.get("cookie")))
        if self.standin.record:
            with self.standin._lock:
                self.standin.seen.append((self.path, token))
        if not token.startswith("at-") or token in self.standin.revoked:
            return None
        return token[3:].rsplit("-", 1)[0]

    def do_GET(self) -> None:
        user = self._user()
        if user is None:
            self._send(401, {"error": "invalid_token"})
            return
        if self.standin.delay_s:
            time.sleep(self.standin.delay_s)
        if self.standin.unavailable:
            self._send(503, {"error": "keys_refreshing"}, retry_after=self.standin.unavailable.pop(0))
            return
        if self.path == "/profile":
            self._send(200, {"sub": user, "username": user})
        elif self.path == "/notes" and self.standin.huge:
            self._send(200, {"notes": [{"id": str(i), "text": "x" * 1000} for i in range(400)]})
        elif self.path == "/notes":
            self._send(200, {"notes": self.standin.notes.get(user, [])})
        elif self.path == "/user":
            self._send(200, {"login": user, "name": user.title(), "public_repos": 2})
        elif self.path.startswith("/user/repos"):
            self._send(200, [{"full_name": f"{user}/one", "private": False}, {"full_name": f"{user}/two", "private": True}])
        else:
            self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        user = self._user()
        body = self.read_json()
        if user is None:
            self._send(401, {"error": "invalid_token"})
            return
        note = {"id": str(len(self.standin.notes.get(user, [])) + 1), "text": body["text"], "created_at": "2026-11-28T00:00:00Z"}
        self.standin.notes.setdefault(user, []).append(note)
        self._send(201, note)

    def _send(self, status: int, payload: Any, retry_after: str | None = None) -> None:
        headers = [("retry-after", retry_after)] if retry_after is not None else []
        if self.standin.set_cookie:
            auth = self.headers.get("authorization", "").removeprefix("Bearer ")
            headers.append(("set-cookie", f"session={auth}; Path=/"))
        self.send_json(status, payload, headers)
