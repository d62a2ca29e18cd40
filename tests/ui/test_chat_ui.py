"""The agent's chat UI (services/agent/static): static checks of the files, and the real page driven in
headless Chromium against a scripted chat API served with the production Content-Security-Policy.

The browser tests need a Chromium binary (``apt-get install chromium``; path overridable with
``CHROMIUM_PATH``) and are skipped with a reason when it is missing. They never download a browser.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

STATIC_DIR = Path(__file__).resolve().parents[2] / "services" / "agent" / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 5_000  # every wait in these tests is bounded by this


# --------------------------------------------------------------------------- static checks


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)


def _index() -> _Tags:
    parser = _Tags()
    parser.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_index_references_the_script_and_stylesheet_by_absolute_path() -> None:
    tags = _index().tags
    scripts = [attrs.get("src") for tag, attrs in tags if tag == "script"]
    stylesheets = [attrs.get("href") for tag, attrs in tags if tag == "link" and attrs.get("rel") == "stylesheet"]
    assert scripts == ["/static/app.js"]
    assert stylesheets == ["/static/app.css"]


def test_index_has_no_inline_scripts_styles_or_event_handlers() -> None:
    parsed = _index()
    assert "".join(parsed.script_text).strip() == "", "inline <script> content"
    for tag, attrs in parsed.tags:
        assert tag != "style", "<style> block"
        assert "style" not in attrs, f"style attribute on <{tag}>"
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"event handler attribute(s) {handlers} on <{tag}>"
        if tag == "script":
            assert attrs.get("src"), "<script> without src"
        for name in ("src", "href", "action", "formaction"):
            value = attrs.get(name)
            if value is not None:
                # same-origin paths or fragments only: no other host, no javascript:/data: URLs
                assert re.fullmatch(r"/(?!/)[^\s\\]*|#[\w-]+", value), f"<{tag} {name}={value!r}>"


@pytest.mark.parametrize("name", ["index.html", "app.js", "app.css"])
def test_no_urls_to_other_hosts(name: str) -> None:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    assert not re.findall(r"(?i)\b(?:https?|wss?|ftp)://", text)
    assert not re.findall(r"""(?i)["'(=]\s*//[a-z0-9]""", text), "protocol-relative URL"


def test_script_uses_no_html_sinks_and_no_eval() -> None:
    source = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    forbidden = {
        "innerHTML": r"\binnerHTML\b",
        "outerHTML": r"\bouterHTML\b",
        "insertAdjacentHTML": r"\binsertAdjacentHTML\b",
        "document.write": r"\bdocument\.write",
        "eval": r"\beval\s*\(",
        "Function constructor": r"\bnew\s+Function\b",
        "string timer": r"\bset(?:Timeout|Interval)\s*\(\s*[\"'`]",
        "setAttribute('on…')": r"setAttribute\(\s*[\"']on",
        "setAttribute('style')": r"setAttribute\(\s*[\"']style",
        "element.style": r"\.style\.",
    }
    found = [label for label, pattern in forbidden.items() if re.search(pattern, source)]
    assert not found, f"app.js uses {found}"
    assert "textContent" in source


def test_stylesheet_loads_nothing() -> None:
    css = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    assert "@import" not in css
    assert not re.search(r"(?i)\burl\s*\(", css)
    assert "expression(" not in css


# --------------------------------------------------------------------------- scripted test server


@dataclass
class Reply:
    """One scripted answer of POST /api/chat: a JSON error (``status`` and ``body``) or an event stream."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    status: int = 200
    body: dict[str, Any] | None = None


@dataclass
class Script:
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    start_hits: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.replies.clear()
        self.requests.clear()
        self.start_hits.clear()


def _contract_problem(body: Any) -> str | None:
    """The request shape the agent service accepts; anything else is a UI bug."""
    if not isinstance(body, dict) or set(body) != {"message", "history"}:
        return f"fields must be exactly message and history, got {sorted(body) if isinstance(body, dict) else body!r}"
    message, history = body["message"], body["history"]
    if not isinstance(message, str) or not 1 <= len(message) <= 4000:
        return "message must be 1..4000 characters"
    if not isinstance(history, list) or len(history) > 20:
        return "history must be a list of at most 20 turns"
    for turn in history:
        if not isinstance(turn, dict) or set(turn) != {"role", "text"}:
            return f"bad turn {turn!r}"
        if turn["role"] not in ("user", "assistant") or not isinstance(turn["text"], str) or len(turn["text"]) > 4000:
            return f"bad turn {turn!r}"
    return None


async def _event_stream(events: list[tuple[str, Any]]) -> AsyncIterator[bytes]:
    for kind, data in events:
        if kind == "wait":  # hold the stream until the test sets the threading.Event (bounded)
            deadline = time.monotonic() + WAIT_MS / 1000
            while not data.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            continue
        frame = f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
        # Split every event across two chunks, so the UI's parser must reassemble lines.
        middle = len(frame) // 2
        yield frame[:middle]
        await asyncio.sleep(0.005)
        yield frame[middle:]


def build_app(script: Script) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        body = await request.json()
        script.requests.append(body)
        problem = _contract_problem(body)
        if problem is not None or request.headers.get("content-type") != "application/json":
            return JSONResponse({"error": "invalid_request", "message": f"test server: {problem or 'content-type'}"}, status_code=400)
        if not script.replies:
            return JSONResponse({"error": "unscripted", "message": "test server: no reply scripted"}, status_code=500)
        reply = script.replies.popleft()
        if reply.body is not None:
            return JSONResponse(reply.body, status_code=reply.status)
        return StreamingResponse(_event_stream(reply.events), media_type="text/event-stream")

    @app.get("/oauth2/start")
    def start(flow: str) -> RedirectResponse:
        script.start_hits.append(flow)
        return RedirectResponse("/", status_code=302)

    @app.get("/csp-canary")
    def canary() -> HTMLResponse:
        # Deliberately breaks the policy: proves the harness sees CSP violations.
        return HTMLResponse('<!doctype html><title>x</title><style>p{color:red}</style><p style="color:blue">x</p><script>1</script>')

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


class _Server:
    def __init__(self, app: FastAPI) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> _Server:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()


@dataclass
class ChatServer:
    base_url: str
    script: Script


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ChatServer]:
    script = Script()
    with _Server(build_app(script)) as server:
        yield ChatServer(base_url=f"http://127.0.0.1:{server.port}", script=script)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file() and os.environ.get("REQUIRE_CHROMIUM"):
        pytest.fail(f"no Chromium at {CHROMIUM}, and this run requires the browser tests (make installs it: make browser)")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it (apt-get install -y --no-install-recommends chromium) or set CHROMIUM_PATH")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=15_000)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Ui:
    page: Page
    base_url: str
    script: Script
    console: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.page.goto(self.base_url + "/", wait_until="load")
        expect(self.page.get_by_role("button", name="Send")).to_be_enabled()

    def send(self, text: str) -> None:
        box = self.page.get_by_label("Message", exact=True)
        box.fill(text)
        box.press("Enter")

    def bubbles(self, kind: str) -> list[str]:
        return self.page.locator(f"#messages .bubble-{kind}").all_text_contents()

    def storage(self, key: str) -> Any:
        raw = self.page.evaluate("key => window.sessionStorage.getItem(key)", key)
        return None if raw is None else json.loads(raw)

    def expect_idle(self) -> None:
        expect(self.page.get_by_label("Message", exact=True)).to_be_enabled()
        expect(self.page.get_by_role("button", name="Send")).to_be_enabled()

    def assert_clean(self, allowed_console: str | None = None) -> None:
        unexpected = [line for line in self.console if allowed_console is None or not re.fullmatch(allowed_console, line)]
        assert unexpected == [], "console errors or warnings"
        assert self.violations == [], "CSP violations"
        assert self.foreign_requests == [], "requests to other origins"


@pytest.fixture
def ui(browser: Browser, chat_server: ChatServer) -> Iterator[Ui]:
    chat_server.script.reset()
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    context.set_default_navigation_timeout(WAIT_MS)
    page = context.new_page()
    state = Ui(page=page, base_url=chat_server.base_url, script=chat_server.script)

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            state.console.append(f"{message.type}: {message.text} @ {message.location.get('url', '')}")

    def guard(route: Route) -> None:
        url = route.request.url
        if url == chat_server.base_url or url.startswith(chat_server.base_url + "/"):
            route.continue_()
        else:
            state.foreign_requests.append(url)
            route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda error: state.console.append(f"pageerror: {error}"))
    # A DOM-level listener as well as the console: Chromium reports violations both ways.
    context.expose_function("__reportCspViolation", lambda text: state.violations.append(str(text)))
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => window.__reportCspViolation(e.violatedDirective + ' ' + e.blockedURI));"
    )
    context.route("**/*", guard)
    try:
        yield state
    finally:
        context.close()


# --------------------------------------------------------------------------- browser tests


def test_harness_detects_csp_violations(ui: Ui) -> None:
    ui.page.goto(ui.base_url + "/csp-canary")
    deadline = time.monotonic() + WAIT_MS / 1000
    while len(ui.violations) < 3 and time.monotonic() < deadline:
        ui.page.wait_for_timeout(20)
    assert len(ui.violations) >= 3, ui.violations
    assert any("Content Security Policy" in line for line in ui.console), ui.console


def test_reply_is_shown_and_history_is_sent_and_kept(ui: Ui) -> None:
    ui.script.replies.extend(
        [
            Reply(events=[("message", {"text": "Hello! <b>How</b> can I help?"}), ("done", {})]),
            Reply(events=[("message", {"text": "First part."}), ("message", {"text": "Second part."}), ("done", {})]),
        ]
    )
    ui.open()
    page = ui.page
    assert page.locator("#messages").get_attribute("role") == "log"
    assert page.locator("#messages").get_attribute("aria-live") == "polite"
    expect(page.get_by_label("Message", exact=True)).to_be_focused()

    ui.send("  Hi there  ")
    expect(page.locator("#messages .bubble-assistant")).to_have_text(["Hello! <b>How</b> can I help?"])
    assert page.locator("#messages b").count() == 0, "server text must never become markup"
    ui.expect_idle()
    expect(page.get_by_label("Message", exact=True)).to_be_focused()

    page.get_by_label("Message", exact=True).fill("And then?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#messages .bubble-assistant")).to_have_count(3)
    ui.expect_idle()

    assert ui.bubbles("user") == ["Hi there", "And then?"]
    assert ui.bubbles("assistant") == ["Hello! <b>How</b> can I help?", "First part.", "Second part."]
    assert ui.script.requests == [
        {"message": "Hi there", "history": []},
        {
            "message": "And then?",
            "history": [{"role": "user", "text": "Hi there"}, {"role": "assistant", "text": "Hello! <b>How</b> can I help?"}],
        },
    ]

    # The conversation survives a reload (the consent round trip) ...
    page.reload()
    expect(page.locator("#messages .bubble")).to_have_count(5)
    # ... and "New conversation" clears it.
    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#messages .bubble")).to_have_count(0)
    expect(page.locator("#empty-state")).to_be_visible()
    assert ui.storage("agent.history") is None
    ui.assert_clean()


def test_tool_calls_are_shown_and_updated(ui: Ui) -> None:
    gate = threading.Event()
    ui.script.replies.append(
        Reply(
            events=[
                ("tool_call", {"id": "t1", "name": "list_notes", "input": {"limit": 5}}),
                ("wait", gate),
                ("tool_result", {"id": "t1", "name": "list_notes", "ok": True, "summary": "3 notes"}),
                ("tool_call", {"id": "t2", "name": "get_profile", "input": {}}),
                ("tool_result", {"id": "t2", "name": "get_profile", "ok": False, "summary": "the API answered 503"}),
                ("message", {"text": "You have 3 notes."}),
                ("done", {}),
            ]
        )
    )
    ui.open()
    page = ui.page
    ui.send("What are my notes?")

    first = page.locator('[data-tool-id="t1"]')
    expect(first).to_contain_text("Using list_notes")
    expect(first).to_have_attribute("data-state", "running")
    expect(page.get_by_label("Message", exact=True)).to_be_disabled()
    expect(page.get_by_role("status")).to_have_text("The agent is working…")
    gate.set()

    expect(page.locator("#messages .bubble-assistant")).to_have_text(["You have 3 notes."])
    ui.expect_idle()
    expect(first).to_have_attribute("data-state", "ok")
    expect(first.locator("summary")).to_have_text("Used list_notes")
    second = page.locator('[data-tool-id="t2"]')
    expect(second).to_have_attribute("data-state", "failed")
    expect(second.locator("summary")).to_have_text("get_profile did not succeed")

    # Collapsed by default; the summary opens with the keyboard.
    details = first.locator("details")
    expect(details.locator(".tool-body")).to_be_hidden()
    first.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(details.locator(".tool-body")).to_be_visible()
    expect(details).to_contain_text("3 notes")
    expect(details.locator("pre")).to_contain_text('"limit": 5')
    assert page.locator("#messages .entry-tool").count() == 2
    # Tool lines are shown, not sent back as conversation history.
    assert ui.storage("agent.history") == [
        {"role": "user", "text": "What are my notes?"},
        {"role": "assistant", "text": "You have 3 notes."},
    ]
    ui.assert_clean()


def test_authorization_round_trip_resumes_the_request(ui: Ui) -> None:
    ui.script.replies.extend(
        [
            Reply(events=[("message", {"text": "Hi, what can I do?"}), ("done", {})]),
            Reply(
                events=[
                    ("tool_call", {"id": "t1", "name": "list_notes", "input": {}}),
                    (
                        "authorization_required",
                        {
                            "provider": "demo-notes",
                            "display_name": "Demo Notes",
                            "scopes": ["notes/read", "profile/read"],
                            "start_url": "/oauth2/start?flow=v1.abc-DEF_123",
                        },
                    ),
                    ("done", {}),
                ]
            ),
            Reply(
                events=[
                    ("tool_call", {"id": "t1", "name": "list_notes", "input": {}}),
                    ("tool_result", {"id": "t1", "name": "list_notes", "ok": True, "summary": "2 notes"}),
                    ("message", {"text": "You have 2 notes."}),
                    ("done", {}),
                ]
            ),
        ]
    )
    ui.open()
    page = ui.page
    ui.send("hello")
    expect(page.locator("#messages .bubble-assistant")).to_have_text(["Hi, what can I do?"])
    ui.send("show my notes")

    card = page.get_by_role("region", name="Demo Notes needs your permission")
    expect(card).to_be_visible()
    expect(card.get_by_role("listitem")).to_have_text(["notes/read", "profile/read"])
    authorize = card.get_by_role("button", name="Authorize Demo Notes")
    expect(authorize).to_be_focused()
    ui.expect_idle()
    waiting = page.locator('[data-tool-id="t1"]')
    expect(waiting).to_have_attribute("data-state", "stopped")
    expect(waiting.locator("summary")).to_have_text("list_notes did not finish")
    assert ui.storage("agent.pending") is None, "saved only when the person chooses to authorize"

    authorize.click()
    # /oauth2/start was visited (it redirects back to "/"); the page picks the request up again.
    expect(page.get_by_text("Continuing where you left off…")).to_be_visible()
    expect(page.locator("#messages .bubble-assistant")).to_have_text(["Hi, what can I do?", "You have 2 notes."])
    ui.expect_idle()

    assert ui.script.start_hits == ["v1.abc-DEF_123"]
    first_try, resumed = ui.script.requests[1], ui.script.requests[2]
    assert (
        first_try
        == resumed
        == {
            "message": "show my notes",
            "history": [{"role": "user", "text": "hello"}, {"role": "assistant", "text": "Hi, what can I do?"}],
        }
    )
    assert ui.bubbles("user") == ["hello", "show my notes"]
    assert page.get_by_role("button", name="Authorize Demo Notes").count() == 0
    assert ui.storage("agent.pending") is None
    assert ui.storage("agent.history")[-1] == {"role": "assistant", "text": "You have 2 notes."}
    ui.assert_clean()


def test_stale_pending_request_is_dropped(ui: Ui) -> None:
    ui.open()
    ui.page.evaluate(
        """() => sessionStorage.setItem("agent.pending", JSON.stringify(
             {message: "old", history: [], saved_at: Date.now() - 11 * 60 * 1000}))"""
    )
    ui.page.reload()
    ui.expect_idle()
    assert ui.storage("agent.pending") is None
    assert ui.script.requests == []
    assert ui.page.get_by_text("Continuing where you left off…").count() == 0
    ui.assert_clean()


def test_authorization_link_to_another_origin_is_refused(ui: Ui) -> None:
    bad_urls = ["https://evil.example/x", "//evil.example/oauth2/start?flow=x", "javascript:alert(1)", "/oauth2/startx?flow=a"]
    events: list[tuple[str, Any]] = [
        ("authorization_required", {"provider": "evil", "display_name": "Evil", "scopes": ["all"], "start_url": url}) for url in bad_urls
    ]
    ui.script.replies.append(Reply(events=[*events, ("done", {})]))
    ui.open()
    page = ui.page
    ui.send("show my notes")

    expect(page.locator("#messages .bubble-error")).to_have_count(len(bad_urls))
    expect(page.locator("#messages .bubble-error").first).to_contain_text("does not trust")
    ui.expect_idle()
    assert page.get_by_role("button", name=re.compile("Authorize")).count() == 0
    assert page.locator("#messages a").count() == 0
    assert ui.storage("agent.pending") is None
    assert page.url == ui.base_url + "/"
    assert ui.script.start_hits == []
    ui.assert_clean()


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (400, {"error": "invalid_request", "message": "That message is too long."}, "That message is too long."),
        (401, {"error": "not_signed_in", "message": "ignored"}, "Your session has ended — reload the page to sign in again."),
    ],
    ids=["400", "401"],
)
def test_http_errors_are_shown(ui: Ui, status: int, body: dict[str, str], shown: str) -> None:
    ui.script.replies.append(Reply(status=status, body=body))
    ui.script.replies.append(Reply(events=[("error", {"code": "model_unavailable", "message": "The model is busy."}), ("done", {})]))
    ui.open()
    page = ui.page
    ui.send("hello")
    expect(page.locator("#messages .bubble-error")).to_have_text([shown])
    ui.expect_idle()

    # An `error` event in a stream is shown the same way.
    ui.send("again")
    expect(page.locator("#messages .bubble-error")).to_have_text([shown, "The model is busy."])
    ui.expect_idle()
    # Chromium itself logs every non-2xx fetch; that one line is the browser's, not the page's.
    ui.assert_clean(
        allowed_console=rf"error: Failed to load resource: the server responded with a status of {status} \(.*\) @ {re.escape(ui.base_url)}/api/chat"
    )


def test_history_sent_is_bounded_to_what_the_server_accepts(ui: Ui) -> None:
    ui.script.replies.append(Reply(events=[("message", {"text": "ok"}), ("done", {})]))
    ui.open()
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "text": f"turn {i}"} for i in range(30)]
    turns[-1]["text"] = "x" * 5000
    ui.page.evaluate("turns => sessionStorage.setItem('agent.history', JSON.stringify(turns))", turns)
    ui.page.reload()
    expect(ui.page.locator("#messages .bubble")).to_have_count(30)
    ui.send("next")
    expect(ui.page.locator("#messages .bubble-assistant").last).to_have_text("ok")
    sent = ui.script.requests[0]["history"]
    assert len(sent) == 20
    assert sent[0] == {"role": "user", "text": "turn 10"}
    assert sent[-1] == {"role": "assistant", "text": "x" * 4000}
    ui.assert_clean()
