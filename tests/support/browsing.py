"""What the browser tests share: how Chromium is launched, the bound on every wait, and a watch on a
browser context that records console errors, CSP violations and requests to unexpected origins.

The browser tests need a Chromium binary (``apt-get install chromium``; path overridable with
``CHROMIUM_PATH``) and are skipped with a reason when it is missing, or fail when ``REQUIRE_CHROMIUM``
is set. They never download a browser.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Request, Route, WebError, sync_playwright

from deploy.verify.browser_checks import CHROMIUM_ARGS as VERIFY_CHROMIUM_ARGS

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = list(VERIFY_CHROMIUM_ARGS)  # one set of flags for the tests and `make verify`
WAIT_MS = 5_000  # every wait in the browser tests is bounded by this

# A DOM-level listener as well as the console: Chromium reports violations both ways.
_CSP_LISTENER = (
    "document.addEventListener('securitypolicyviolation', e => window.__reportCspViolation(e.violatedDirective + ' ' + e.blockedURI));"
)


@contextmanager
def chromium(extra_args: tuple[str, ...] = ()) -> Iterator[Browser]:
    """Debian's Chromium, headless; skips (or fails under REQUIRE_CHROMIUM) when it is not installed."""
    if not CHROMIUM.is_file() and os.environ.get("REQUIRE_CHROMIUM"):
        pytest.fail(f"no Chromium at {CHROMIUM}, and this run requires the browser tests (make installs it: make browser)")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it (apt-get install -y --no-install-recommends chromium) or set CHROMIUM_PATH")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args], headless=True, timeout=15_000
        )
        try:
            yield browser
        finally:
            browser.close()


class LiveServer:
    """An ASGI app served by uvicorn on 127.0.0.1, on a free port, in a background thread."""

    def __init__(self, app: Any, *, lifespan: Literal["on", "off"] = "off", port: int = 0, proxy_headers: bool = True) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", port))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        # log_config=None: uvicorn leaves the process's logging configuration alone.
        config = uvicorn.Config(app, log_level="warning", log_config=None, lifespan=lifespan, access_log=False, proxy_headers=proxy_headers)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, name="ui-test-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self._server.should_exit = True
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()


def same_origin(url: str, origin: str) -> bool:
    return url == origin or url.startswith(origin + "/")


@dataclass
class PageWatch:
    """Everything a context's pages log as errors or warnings, every CSP violation, and every request
    outside the allowed origins.

    Requests to other origins are recorded from the browser's request events, which include the
    targets of redirects. The route guard also aborts them, but Playwright routes only see the first
    request of a redirect chain (microsoft/playwright#33882): a test whose pages follow redirects to
    other hosts must keep the browser off the network by other means (see test_chat_e2e.py).
    """

    allowed_origins: tuple[str, ...]
    console: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    @classmethod
    def attach(cls, context: BrowserContext, *allowed_origins: str) -> PageWatch:
        watch = cls(allowed_origins)
        context.set_default_timeout(WAIT_MS)
        context.set_default_navigation_timeout(WAIT_MS)
        context.on("console", watch._on_console)
        context.on("weberror", watch._on_web_error)
        context.on("request", watch._on_request)
        context.expose_function("__reportCspViolation", lambda text: watch.violations.append(str(text)))
        context.add_init_script(_CSP_LISTENER)
        context.route("**/*", watch._guard)
        return watch

    def allows(self, url: str) -> bool:
        return any(same_origin(url, origin) for origin in self.allowed_origins)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text} @ {message.location.get('url', '')}")

    def _on_web_error(self, error: WebError) -> None:
        self.console.append(f"pageerror: {error.error}")

    def _on_request(self, request: Request) -> None:
        if not self.allows(request.url):
            self.foreign_requests.append(request.url)

    def _guard(self, route: Route) -> None:
        if self.allows(route.request.url):
            route.continue_()
        else:
            route.abort()

    def assert_clean(self, allowed_console: str | None = None) -> None:
        unexpected = [line for line in self.console if allowed_console is None or not re.fullmatch(allowed_console, line)]
        assert unexpected == [], f"console errors or warnings: {unexpected}"
        assert self.violations == [], f"CSP violations: {self.violations}"
        assert self.foreign_requests == [], f"requests to other origins: {self.foreign_requests}"
