"""The agent's chat UI (services/agent/static): static checks of the files, and the real page driven in
headless Chromium against a scripted chat API served with the production Content-Security-Policy.

The browser tests need a Chromium binary (see tests/support/browsing.py); they never download a browser.
The same page against the real agent and session binding services: test_chat_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import Browser, Locator, Page, expect

from tests.support.browsing import WAIT_MS, LiveServer, PageWatch

STATIC_DIR = Path(__file__).resolve().parents[3] / "services" / "agent" / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ALICE_DIGEST = "3f6c0a1e9b2d4c5f"  # what GET /api/session answers: an opaque digest of the signed-in person
BOB_DIGEST = "8d1e7b2a4c6f0e3d"
DISPLAY_NAMES = {"demo-notes": "Demo Notes"}  # the stand-in's configured accounts


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


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed((STATIC_DIR / page).read_text(encoding="utf-8"))
    parser.close()
    return parser


@pytest.mark.parametrize(("page", "script"), [("index.html", "/static/app.js"), ("connections.html", "/static/connections.js")])
def test_index_references_the_script_and_stylesheet_by_absolute_path(page: str, script: str) -> None:
    tags = _parse(page).tags
    scripts = [attrs.get("src") for tag, attrs in tags if tag == "script"]
    stylesheets = [attrs.get("href") for tag, attrs in tags if tag == "link" and attrs.get("rel") == "stylesheet"]
    assert scripts == [script]
    assert stylesheets == ["/static/app.css"]


@pytest.mark.parametrize("page", ["index.html", "connections.html"])
def test_index_has_no_inline_scripts_styles_or_event_handlers(page: str) -> None:
    parsed = _parse(page)
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


@pytest.mark.parametrize("name", ["index.html", "app.js", "app.css", "connections.html", "connections.js"])
def test_no_urls_to_other_hosts(name: str) -> None:
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    assert not re.findall(r"(?i)\b(?:https?|wss?|ftp)://", text)
    assert not re.findall(r"""(?i)["'(=]\s*//[a-z0-9]""", text), "protocol-relative URL"


@pytest.mark.parametrize("name", ["app.js", "connections.js"])
def test_script_uses_no_html_sinks_and_no_eval(name: str) -> None:
    source = (STATIC_DIR / name).read_text(encoding="utf-8")
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
    assert not found, f"{name} uses {found}"
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


@dataclass(frozen=True)
class DisconnectCall:
    """One POST /api/connections/{name}/disconnect as the stand-in received it."""

    path: str
    body: bytes
    content_type: str | None
    cache_control: str | None
    cookie: str | None


@dataclass
class Script:
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    raw_requests: list[bytes] = field(default_factory=list)
    start_hits: list[str] = field(default_factory=list)
    user: str | None = ALICE_DIGEST  # who GET /api/session says is signed in; None: 401, not signed in
    session_checks: int = 0
    disconnects: list[DisconnectCall] = field(default_factory=list)
    # What POST /api/connections/{name}/disconnect answers instead of success: (status, body) or a plain-text body.
    disconnect_failure: tuple[int, dict[str, Any] | str] | None = None
    disconnect_gate: threading.Event | None = None  # holds the disconnect's answer until set (bounded)

    def reset(self) -> None:
        self.replies.clear()
        self.requests.clear()
        self.raw_requests.clear()
        self.start_hits.clear()
        self.user = ALICE_DIGEST
        self.session_checks = 0
        self.disconnects.clear()
        self.disconnect_failure = None
        self.disconnect_gate = None


def _has_lone_surrogate(text: str) -> bool:
    # Python's json module accepts "\ud83d" on its own; the agent's parser refuses the whole request.
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def _contract_problem(body: Any) -> str | None:
    """The request shape the agent service accepts; anything else is a UI bug."""
    if not isinstance(body, dict) or set(body) - {"after_consent"} != {"message", "history"}:
        return f"fields must be message, history and at most after_consent, got {sorted(body) if isinstance(body, dict) else body!r}"
    after = body.get("after_consent")
    if after is not None and (not isinstance(after, str) or not 1 <= len(after) <= 4096):
        return "after_consent must be the start link's flow, 1..4096 characters"
    message, history = body["message"], body["history"]
    if not isinstance(message, str) or not 1 <= len(message) <= 4000 or _has_lone_surrogate(message):
        return "message must be 1..4000 characters"
    if not isinstance(history, list) or len(history) > 20:
        return "history must be a list of at most 20 turns"
    bad = [turn for turn in history if not _valid_turn(turn)]
    return f"bad turn {bad[0]!r:.200}" if bad else None


def _valid_turn(turn: Any) -> bool:
    return (
        isinstance(turn, dict)
        and set(turn) == {"role", "text"}
        and turn["role"] in ("user", "assistant")
        and isinstance(turn["text"], str)
        and 1 <= len(turn["text"]) <= 4000
        and not _has_lone_surrogate(turn["text"])
    )


async def _wait_for(gate: threading.Event) -> None:
    """Until the test sets the gate, bounded by WAIT_MS."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not gate.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def _event_stream(events: list[tuple[str, Any]]) -> AsyncIterator[bytes]:
    for kind, data in events:
        if kind == "wait":  # hold the stream until the test sets the threading.Event
            await _wait_for(data)
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

    @app.get("/api/session")
    def session() -> JSONResponse:
        script.session_checks += 1
        if script.user is None:
            return JSONResponse(
                {"error": "not_signed_in", "message": "You are not signed in. Reload the page to sign in."}, status_code=401
            )
        return JSONResponse({"user": script.user})

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        raw = await request.body()
        script.raw_requests.append(raw)
        body = json.loads(raw)
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

    @app.post("/api/connections/{name}/disconnect")
    async def disconnect(name: str, request: Request) -> Response:
        headers = request.headers
        call = DisconnectCall(
            request.url.path, await request.body(), headers.get("content-type"), headers.get("cache-control"), headers.get("cookie")
        )
        script.disconnects.append(call)
        if script.disconnect_gate is not None:
            await _wait_for(script.disconnect_gate)
        if script.disconnect_failure is not None:
            status, body = script.disconnect_failure
            return JSONResponse(body, status_code=status) if isinstance(body, dict) else PlainTextResponse(body, status_code=status)
        display_name = DISPLAY_NAMES.get(name, name)
        # As services/agent/connections.py answers for a provider that offers no revocation.
        return JSONResponse(
            {
                "status": "disconnected",
                "display_name": display_name,
                "revocation": "not_offered",
                "message": f"Disconnected. The agent will not use your {display_name} account again unless you connect it again.",
            }
        )

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


@dataclass
class ChatServer:
    base_url: str
    script: Script


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ChatServer]:
    script = Script()
    with LiveServer(build_app(script)) as server:
        yield ChatServer(base_url=server.base_url, script=script)


@dataclass
class Ui:
    page: Page
    base_url: str
    script: Script
    watch: PageWatch

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
        self.watch.assert_clean(allowed_console)


@pytest.fixture
def ui(browser: Browser, chat_server: ChatServer) -> Iterator[Ui]:
    chat_server.script.reset()
    context = browser.new_context()
    watch = PageWatch.attach(context, chat_server.base_url)
    try:
        yield Ui(page=context.new_page(), base_url=chat_server.base_url, script=chat_server.script, watch=watch)
    finally:
        context.close()


# --------------------------------------------------------------------------- browser tests


def test_harness_detects_csp_violations(ui: Ui) -> None:
    ui.page.goto(ui.base_url + "/csp-canary")
    deadline = time.monotonic() + WAIT_MS / 1000
    while len(ui.watch.violations) < 3 and time.monotonic() < deadline:
        ui.page.wait_for_timeout(20)
    assert len(ui.watch.violations) >= 3, ui.watch.violations
    assert any("Content Security Policy" in line for line in ui.watch.console), ui.watch.console


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
    expect(waiting.locator("summary")).to_have_text("list_notes is waiting for your permission")
    assert ui.storage("agent.pending") is None, "saved only when the person chooses to authorize"

    authorize.click()
    # /oauth2/start was visited (it redirects back to "/"); the page picks the request up again.
    expect(page.get_by_text("Continuing where you left off…")).to_be_visible()
    expect(page.locator("#messages .bubble-assistant")).to_have_text(["Hi, what can I do?", "You have 2 notes."])
    ui.expect_idle()

    assert ui.script.start_hits == ["v1.abc-DEF_123"]
    first_try, resumed = ui.script.requests[1], ui.script.requests[2]
    asked = {
        "message": "show my notes",
        "history": [{"role": "user", "text": "hello"}, {"role": "assistant", "text": "Hi, what can I do?"}],
    }
    # The resent request names the consent it came back from: the start link's flow, nothing else.
    assert first_try == asked and resumed == asked | {"after_consent": "v1.abc-DEF_123"}
    assert ui.bubbles("user") == ["hello", "show my notes"]
    assert page.get_by_role("button", name="Authorize Demo Notes").count() == 0
    assert ui.storage("agent.pending") is None
    assert ui.storage("agent.history")[-1] == {"role": "assistant", "text": "You have 2 notes."}
    ui.assert_clean()


def test_stale_pending_request_is_dropped(ui: Ui) -> None:
    ui.open()
    ui.page.evaluate(
        """user => sessionStorage.setItem("agent.pending", JSON.stringify(
             {user, message: "old", history: [], saved_at: Date.now() - 11 * 60 * 1000}))""",
        ALICE_DIGEST,
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


# --------------------------------------------------------------------------- one tab, several people

_BUBBLE_RECORDER = """
new MutationObserver(records => {
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node.nodeType === 1) {
        for (const bubble of node.matches(".bubble") ? [node] : node.querySelectorAll(".bubble")) {
          window.__sawBubble(bubble.textContent);
        }
      }
    }
  }
}).observe(document, {childList: true, subtree: true});
"""


def wait_for_user(ui: Ui, digest: str) -> None:
    """Until the page has checked GET /api/session and made the stored conversation this person's."""
    ui.page.wait_for_function("user => sessionStorage.getItem('agent.user') === JSON.stringify(user)", arg=digest)
    ui.expect_idle()


def test_another_person_in_the_same_tab_never_sees_or_replays_the_previous_conversation(ui: Ui) -> None:
    ui.script.replies.extend(
        [
            Reply(events=[("message", {"text": "Hi Alice, your notes are private."}), ("done", {})]),
            Reply(
                events=[
                    (
                        "authorization_required",
                        {"provider": "demo", "display_name": "Demo API", "scopes": [], "start_url": "/oauth2/start?flow=v1.alice"},
                    ),
                    ("done", {}),
                ]
            ),
            Reply(events=[("message", {"text": "Hello Bob."}), ("done", {})]),
        ]
    )
    seen: list[str] = []
    ui.page.context.expose_function("__sawBubble", lambda text: seen.append(str(text)))
    ui.page.context.add_init_script(_BUBBLE_RECORDER)
    ui.open()
    wait_for_user(ui, ALICE_DIGEST)
    ui.send("hello")
    expect(ui.page.locator("#messages .bubble-assistant")).to_have_text(["Hi Alice, your notes are private."])
    ui.send("show my notes")
    authorize = ui.page.get_by_role("button", name="Authorize Demo API")
    expect(authorize).to_be_focused()
    assert [turn["text"] for turn in ui.storage("agent.history")] == ["hello", "Hi Alice, your notes are private.", "show my notes"]

    # Alice's sign-in ends and Bob signs in in the same tab (here: while the consent round trip is under way).
    ui.script.user = BOB_DIGEST
    seen.clear()
    authorize.click()
    wait_for_user(ui, BOB_DIGEST)

    assert ui.script.start_hits == ["v1.alice"]
    assert seen == [], "Bob's page showed something of Alice's"
    expect(ui.page.locator("#messages .bubble")).to_have_count(0)
    expect(ui.page.locator("#empty-state")).to_be_visible()
    assert ui.page.get_by_text("Continuing where you left off…").count() == 0
    assert len(ui.script.requests) == 2, "Alice's waiting request was replayed for Bob"
    assert ui.storage("agent.history") is None
    assert ui.storage("agent.pending") is None

    # Bob's first message carries none of Alice's conversation.
    ui.send("hi")
    expect(ui.page.locator("#messages .bubble-assistant")).to_have_text(["Hello Bob."])
    assert ui.script.requests[-1] == {"message": "hi", "history": []}
    assert ui.storage("agent.history") == [{"role": "user", "text": "hi"}, {"role": "assistant", "text": "Hello Bob."}]

    # Alice signing in again later does not get Bob's conversation either (nor her own back: it is gone).
    ui.script.user = ALICE_DIGEST
    seen.clear()
    ui.page.reload()
    wait_for_user(ui, ALICE_DIGEST)
    expect(ui.page.locator("#messages .bubble")).to_have_count(0)
    assert seen == []
    assert ui.storage("agent.history") is None
    ui.assert_clean()


def test_a_pending_request_saved_for_another_person_is_not_replayed(ui: Ui) -> None:
    ui.open()
    wait_for_user(ui, ALICE_DIGEST)
    ui.page.evaluate(
        """user => sessionStorage.setItem("agent.pending", JSON.stringify(
             {user, message: "delete my notes", history: [], saved_at: Date.now()}))""",
        BOB_DIGEST,
    )
    ui.page.reload()
    wait_for_user(ui, ALICE_DIGEST)
    assert ui.storage("agent.pending") is None
    assert ui.script.requests == []
    assert ui.page.get_by_text("Continuing where you left off…").count() == 0
    ui.assert_clean()


def test_signed_out_at_start_shows_nothing_stored_until_signed_in_again(ui: Ui) -> None:
    ui.script.replies.append(Reply(events=[("message", {"text": "ok"}), ("done", {})]))
    ui.open()
    wait_for_user(ui, ALICE_DIGEST)
    ui.page.evaluate(
        """user => {
             sessionStorage.setItem("agent.history", JSON.stringify([{role: "user", text: "my secret question"}]));
             sessionStorage.setItem("agent.pending", JSON.stringify(
               {user, message: "my secret question", history: [], saved_at: Date.now()}));
           }""",
        ALICE_DIGEST,
    )
    ui.script.user = None  # the sign-in has ended
    ui.page.reload()
    expect(ui.page.locator("#messages .bubble-error")).to_have_text(["Your session has ended — reload the page to sign in again."])
    ui.expect_idle()
    assert ui.bubbles("user") == []
    assert ui.script.requests == []

    # Sending checks again first, and sends nothing while signed out.
    ui.send("hello")
    expect(ui.page.locator("#messages .bubble-error")).to_have_count(2)
    ui.expect_idle()
    assert ui.script.requests == []
    expect(ui.page.get_by_label("Message", exact=True)).to_have_value("hello")

    # Signed in again as the same person: their conversation is back, and the message goes out with it.
    ui.script.user = ALICE_DIGEST
    ui.page.get_by_role("button", name="Send").click()
    expect(ui.page.locator("#messages .bubble-assistant")).to_have_text(["ok"])
    assert ui.bubbles("user") == ["my secret question", "hello"]
    assert ui.script.requests == [{"message": "hello", "history": [{"role": "user", "text": "my secret question"}]}]
    # The request that waited for consent is not replayed over a new message, nor later.
    assert ui.storage("agent.pending") is None
    ui.assert_clean(
        allowed_console=rf"error: Failed to load resource: the server responded with a status of 401 \(.*\) @ {re.escape(ui.base_url)}/api/session"
    )


# --------------------------------------------------------------------------- lengths in code points


def test_history_is_cut_at_code_points_and_blank_texts_are_skipped(ui: Ui) -> None:
    ui.script.replies.append(Reply(events=[("message", {"text": "ok"}), ("done", {})]))
    ui.open()
    wait_for_user(ui, ALICE_DIGEST)
    # The emoji takes UTF-16 code units 3999 and 4000: cutting at 4000 code units would keep half of it.
    at_boundary = "x" * 3999 + "\N{GRINNING FACE}" + "tail"
    emoji_only = "\N{THUMBS UP SIGN}" * 4001
    turns = [
        {"role": "user", "text": at_boundary},
        {"role": "assistant", "text": "   \n\t "},
        {"role": "user", "text": ""},
        {"role": "assistant", "text": emoji_only},
        {"role": "user", "text": "fine \N{GRINNING FACE}"},
    ]
    ui.page.evaluate("turns => sessionStorage.setItem('agent.history', JSON.stringify(turns))", turns)
    ui.page.reload()
    wait_for_user(ui, ALICE_DIGEST)
    ui.send("next \N{GRINNING FACE}")
    expect(ui.page.locator("#messages .bubble-assistant").last).to_have_text("ok")

    [raw] = ui.script.raw_requests
    text = raw.decode("utf-8")  # strict: a lone surrogate cannot be encoded as UTF-8 ...
    assert not re.search(r"\\u[dD][89a-fA-F]", text), "... so JSON.stringify escapes it as \\udXXX"
    assert ui.script.requests == [
        {
            "message": "next \N{GRINNING FACE}",
            "history": [
                {"role": "user", "text": "x" * 3999 + "\N{GRINNING FACE}"},
                {"role": "assistant", "text": "\N{THUMBS UP SIGN}" * 4000},
                {"role": "user", "text": "fine \N{GRINNING FACE}"},
            ],
        }
    ]
    ui.assert_clean()


def test_message_length_is_counted_in_code_points(ui: Ui) -> None:
    ui.script.replies.append(Reply(events=[("message", {"text": "ok"}), ("done", {})]))
    ui.open()
    wait_for_user(ui, ALICE_DIGEST)
    box = ui.page.get_by_label("Message", exact=True)
    # 4001 code points (8002 code units) is too long for the server: refused before sending.
    box.evaluate("(node, text) => { node.value = text; }", "\N{GRINNING FACE}" * 4001)
    box.press("Enter")
    expect(ui.page.get_by_role("status")).to_have_text("Messages can be at most 4000 characters.")
    assert ui.script.requests == []
    # 4000 code points is within the limit even though it is 8000 code units.
    box.evaluate("(node, text) => { node.value = text; }", "\N{GRINNING FACE}" * 4000)
    box.press("Enter")
    expect(ui.page.locator("#messages .bubble-assistant")).to_have_text(["ok"])
    assert ui.script.requests == [{"message": "\N{GRINNING FACE}" * 4000, "history": []}]
    ui.assert_clean()


def test_a_declined_consent_shows_try_again_and_cancel(ui: Ui) -> None:
    declined = ("authorization_declined", {"provider": "demo", "display_name": "Demo API", "message": "Nothing was shared."})
    tool = ("tool_call", {"id": "t1", "name": "list_notes", "input": {}})
    prompt = ("authorization_required", {"display_name": "Demo API", "scopes": [], "start_url": "/oauth2/start?flow=v1.again"})
    ui.script.replies.extend([Reply(events=[tool, declined, ("done", {})]), Reply(events=[tool, prompt, ("done", {})])])
    ui.open()
    page = ui.page
    ui.send("show my notes")
    card = page.get_by_role("region", name="Permission not given")
    expect(card).to_contain_text("Nothing was shared.")
    expect(page.locator('[data-tool-id="t1"] summary')).to_have_text("list_notes was not allowed")
    expect(card.get_by_role("button", name="Try again")).to_be_focused()
    assert page.get_by_role("button", name="Authorize Demo API").count() == 0, "nothing is asked by itself"

    card.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("button", name="Authorize Demo API")).to_be_visible()
    assert ui.script.requests[-1] == ui.script.requests[0] == {"message": "show my notes", "history": []}, "sent again as new"
    expect(card.get_by_role("button", name="Cancel")).to_be_disabled()
    ui.assert_clean()


# --------------------------------------------------------------------------- disconnecting an account from the chat

NOTES_DISCONNECTED = "Disconnected. The agent will not use your Demo Notes account again unless you connect it again."


def _disconnect_turn(asked: dict[str, Any]) -> Reply:
    """The turn for "disconnect my notes account": the tool names the account, and nothing is disconnected."""
    events: list[tuple[str, Any]] = [("tool_call", {"id": "t1", "name": "disconnect_account", "input": {"account": "notes"}})]
    events.append(("tool_result", {"id": "t1", "name": "disconnect_account", "ok": True, "summary": "asked to confirm"}))
    events.extend([("disconnect_requested", asked), ("message", {"text": "Please confirm on the card below."}), ("done", {})])
    return Reply(events=events)


def _ask_to_disconnect_notes(ui: Ui) -> Locator:
    """Asks the chat to disconnect Demo Notes; returns the card it shows, once the turn is over."""
    ui.script.replies.append(_disconnect_turn({"provider": "demo-notes", "display_name": "Demo Notes"}))
    ui.open()
    ui.send("disconnect my notes account")
    card = ui.page.get_by_role("region", name="Disconnect Demo Notes?")
    expect(card).to_be_visible()
    expect(ui.page.locator("#messages .bubble-assistant")).to_have_text(["Please confirm on the card below."])
    ui.expect_idle()
    return card


def test_a_disconnect_request_shows_a_card_and_keep_connected_sends_nothing(ui: Ui) -> None:
    card = _ask_to_disconnect_notes(ui)
    expect(card).to_contain_text("The agent will not use this account until you connect it again.")
    expect(card.get_by_role("button")).to_have_text(["Disconnect", "Keep connected"])
    expect(card.get_by_role("link", name="Connected accounts")).to_have_attribute("href", "/connections")
    expect(card.get_by_role("button", name="Keep connected")).to_be_focused()  # the choice that changes nothing
    expect(ui.page.locator('[data-tool-id="t1"] summary')).to_have_text("Used disconnect_account")
    assert ui.script.disconnects == [], "the tool call disconnects nothing by itself"

    card.get_by_role("button", name="Keep connected").click()
    expect(card.get_by_role("status")).to_have_text("Kept connected. Nothing was changed.")
    expect(card.get_by_role("button")).to_have_count(0)
    expect(card).not_to_contain_text("until you connect it again")
    expect(ui.page.get_by_label("Message", exact=True)).to_be_focused()
    ui.page.wait_for_timeout(100)  # a request sent anyway would have arrived by now
    assert ui.script.disconnects == []
    # The card is shown, not sent back as conversation history.
    assert ui.storage("agent.history") == [
        {"role": "user", "text": "disconnect my notes account"},
        {"role": "assistant", "text": "Please confirm on the card below."},
    ]
    ui.assert_clean()


def test_disconnect_on_the_card_sends_one_post_and_shows_the_answer(ui: Ui) -> None:
    ui.page.context.add_cookies([{"name": "AWSELBAuthSessionCookie-0", "value": "alice", "url": ui.base_url}])
    gate = threading.Event()
    ui.script.disconnect_gate = gate
    card = _ask_to_disconnect_notes(ui)
    disconnect, keep = card.get_by_role("button", name="Disconnect", exact=True), card.get_by_role("button", name="Keep connected")

    disconnect.click()
    expect(disconnect).to_be_disabled()
    expect(keep).to_be_disabled()
    expect(card.get_by_role("status")).to_have_text("Disconnecting Demo Notes…")
    disconnect.click(force=True)  # a second click while the first runs sends nothing more
    gate.set()

    expect(card.get_by_role("status")).to_have_text(NOTES_DISCONNECTED)
    expect(card.get_by_role("button")).to_have_count(0)
    expect(card).not_to_contain_text("{")
    expect(ui.page.get_by_label("Message", exact=True)).to_be_focused()
    assert ui.script.disconnects == [
        DisconnectCall(
            path="/api/connections/demo-notes/disconnect",
            body=b"{}",
            content_type="application/json",
            cache_control="no-cache",  # what Chromium sends for fetch(…, {cache: "no-store"})
            cookie="AWSELBAuthSessionCookie-0=alice",  # same-origin credentials
        )
    ]
    assert len(ui.script.requests) == 1, "the chat itself was not asked again"
    ui.assert_clean()


@pytest.mark.parametrize("provider", ["../x", "Notes", "notes/../../api/chat", "n" * 21, "", 7, None])
def test_a_malformed_account_name_shows_no_card_and_sends_nothing(ui: Ui, provider: Any) -> None:
    ui.script.replies.append(_disconnect_turn({"provider": provider, "display_name": "Demo Notes"}))
    ui.open()
    ui.send("disconnect my notes account")
    expect(ui.page.locator("#messages .bubble-assistant")).to_have_text(["Please confirm on the card below."])
    ui.expect_idle()
    expect(ui.page.locator("#messages .bubble-error")).to_have_text(["Something went wrong. Please try again."])
    assert ui.page.get_by_role("region").count() == 0
    assert ui.page.locator("#messages button, #messages a").count() == 0
    expect(ui.page.get_by_label("Message", exact=True)).to_be_focused()
    assert ui.script.disconnects == []
    ui.assert_clean()


@pytest.mark.parametrize(
    ("failure", "shown"),
    [
        (
            (503, {"error": "connections_unavailable", "message": "Your connected accounts cannot be read right now."}),
            "Your connected accounts cannot be read right now.",
        ),
        ((502, '{"error": "bad_gateway"}'), "Something went wrong. Please try again. (HTTP 502)"),
    ],
    ids=["json-error", "not-a-sentence"],
)
def test_a_failed_disconnect_shows_why_and_can_be_tried_again(ui: Ui, failure: tuple[int, Any], shown: str) -> None:
    ui.script.disconnect_failure = failure
    card = _ask_to_disconnect_notes(ui)
    disconnect = card.get_by_role("button", name="Disconnect", exact=True)
    disconnect.click()
    expect(card.get_by_role("status")).to_have_text(shown)
    expect(card.get_by_role("status")).to_have_attribute("data-kind", "error")
    expect(disconnect).to_be_enabled()
    expect(card.get_by_role("button", name="Keep connected")).to_be_enabled()
    expect(disconnect).to_be_focused()
    expect(card).to_contain_text("The agent will not use this account until you connect it again.")

    ui.script.disconnect_failure = None
    disconnect.click()
    expect(card.get_by_role("status")).to_have_text(NOTES_DISCONNECTED)
    expect(card.get_by_role("button")).to_have_count(0)
    assert [call.path for call in ui.script.disconnects] == ["/api/connections/demo-notes/disconnect"] * 2
    status = failure[0]
    # Chromium itself logs every non-2xx fetch; that one line is the browser's, not the page's.
    ui.assert_clean(
        allowed_console=rf"error: Failed to load resource: the server responded with a status of {status} \(.*\) @ "
        rf"{re.escape(ui.base_url)}/api/connections/demo-notes/disconnect"
    )
