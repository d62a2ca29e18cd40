"""A minimal in-process HTTP/1.1 client for an ASGI app: exact bytes in the path, query and headers.

TestClient (httpx) normalises what it sends: it refuses control characters in header values and
re-encodes the query. An attacker's raw request is not so polite, and a proxy may pass it on, so the
security tests hand the app the scope a server would build from such a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

HeaderItems = Iterable[tuple[str, str | bytes]]


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def encode_query(params: Iterable[tuple[str, str]]) -> bytes:
    """What a browser sends for these values: every reserved or non-ASCII character percent-encoded."""
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params).encode("ascii")


@dataclass
class AsgiClient:
    """One browser on one origin: a cookie jar filled from `Set-Cookie`, sent back on each request."""

    app: Any
    host: str = "agent.example.com"
    cookies: dict[str, str] = field(default_factory=dict)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: bytes = b"",
        headers: HeaderItems = (),
        body: bytes = b"",
        cookies: bool = True,
    ) -> Answer:
        raw_headers: list[tuple[bytes, bytes]] = []
        names = set()
        for name, value in headers:
            names.add(name.lower())
            raw_headers.append((name.lower().encode("latin-1"), value if isinstance(value, bytes) else value.encode("utf-8")))
        if "host" not in names:
            raw_headers.insert(0, (b"host", self.host.encode("ascii")))
        if cookies and self.cookies:
            raw_headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()).encode("latin-1")))
        if body:
            raw_headers.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "https",
            "path": path,
            "raw_path": path.encode("utf-8"),
            "root_path": "",
            "query_string": query,
            "headers": raw_headers,
            "client": ("198.51.100.7", 50000),
            "server": (self.host, 443),
            "state": {},
        }
        sent = False
        finished = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await finished.wait()  # the client stays connected until the whole answer arrived
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    finished.set()

        await self.app(scope, receive, send)
        answer = Answer(
            int(start["status"]),
            [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start.get("headers", [])],
            b"".join(chunks),
        )
        for value in answer.header("set-cookie"):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(value)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return answer
