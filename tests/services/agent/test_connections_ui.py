"""The connected accounts page (services/agent/static/connections.html and connections.js) driven in headless
Chromium against a scripted stand-in of its API (services/agent/connections.py), served with the agent's own
security headers and Content-Security-Policy.

The static checks of these files (no inline code, no other hosts, no HTML sinks) are the chat page's, in
test_chat_ui.py. Dates are read in the browser's locale and time zone: here en-GB in UTC.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import Browser, Page, expect

from services.agent.assets import STATIC_DIR
from services.agent.main import CONTENT_SECURITY_POLICY
from services.common.middleware import SecurityHeadersMiddleware
from tests.support.browsing import WAIT_MS, LiveServer, PageWatch

ALICE_DIGEST = "3f6c0a1e9b2d4c5f"
ALICE_EMAIL = "alice@example.com"
CONNECTED_AT = 1796639460  # 2026-12-07 10:31 UTC
LAST_USED_AT = 1796803500  # 2026-12-09 08:05 UTC
EARLIER = 1793637900  # 2026-11-02 16:45 UTC
DISCONNECTED_AT = 1796720400  # 2026-12-08 09:00 UTC
NOW = 1796904000  # 2026-12-10 12:00 UTC
NOTES_PERMISSIONS = ["See your profile (name and email address)", "Read your notes", "Add notes"]


def account(name: str, display_name: str, status: str, **dates: int) -> dict[str, Any]:
    """One entry of GET /api/connections, as services/agent/connections.py describes a provider."""
    return {
        "name": name,
        "kind": "demo" if name == "notes" else name,
        "display_name": display_name,
        "permissions": NOTES_PERMISSIONS if name == "notes" else [f"Read your {display_name} data"],
        "status": status,
        "connected_at": dates.get("connected_at"),
        "last_used_at": dates.get("last_used_at"),
        "disconnected_at": dates.get("disconnected_at"),
    }


def accounts() -> list[dict[str, Any]]:
    return [
        account("notes", "Demo Notes", "connected", connected_at=CONNECTED_AT, last_used_at=LAST_USED_AT),
        account("github", "GitHub", "not_connected"),
        account("team", "Team <b>Chat</b>", "disconnected", connected_at=EARLIER, disconnected_at=DISCONNECTED_AT),
    ]


# --------------------------------------------------------------------------- scripted API


@dataclass
class Answer:
    """One scripted answer: status and JSON body, and (optionally) what GET /api/connections answers afterwards."""

    body: dict[str, Any]
    status: int = 200
    then: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Post:
    path: str
    content_type: str | None
    body: bytes


@dataclass
class Api:
    connections: list[dict[str, Any]] = field(default_factory=accounts)
    list_errors: deque[Answer] = field(default_factory=deque)  # answered first, by the next reads of the list
    answers: deque[Answer] = field(default_factory=deque)  # the connect and disconnect answers, in order
    posts: list[Post] = field(default_factory=list)
    start_hits: list[str] = field(default_factory=list)
    list_gate: threading.Event = field(default_factory=threading.Event)  # GET /api/connections waits while it is clear

    def __post_init__(self) -> None:
        self.list_gate.set()

    def reset(self) -> None:
        self.__dict__.update(Api().__dict__)


async def _held(gate: threading.Event) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while not gate.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def build_app(api: Api) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeadersMiddleware, content_security_policy=CONTENT_SECURITY_POLICY)

    @app.get("/connections")
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "connections.html", media_type="text/html")

    @app.get("/")
    def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/session")
    def session() -> JSONResponse:
        return JSONResponse({"user": ALICE_DIGEST, "email": ALICE_EMAIL})

    @app.get("/api/connections")
    async def listing() -> JSONResponse:
        await _held(api.list_gate)
        if api.list_errors:
            error = api.list_errors.popleft()
            return JSONResponse(error.body, status_code=error.status)
        return JSONResponse({"connections": api.connections})

    @app.post("/api/connections/{name}/{action}")
    async def act(name: str, action: str, request: Request) -> JSONResponse:
        api.posts.append(Post(request.url.path, request.headers.get("content-type"), await request.body()))
        if not api.answers:
            return JSONResponse({"error": "unscripted", "message": "test server: no answer scripted"}, status_code=500)
        answer = api.answers.popleft()
        if answer.then is not None:
            api.connections = answer.then
        return JSONResponse(answer.body, status_code=answer.status)

    @app.post("/api/sign-out")
    async def sign_out(request: Request) -> JSONResponse:
        api.posts.append(Post(request.url.path, request.headers.get("content-type"), await request.body()))
        return JSONResponse({"location": f"{request.base_url}signed-out"})

    @app.get("/signed-out")
    def signed_out() -> FileResponse:
        return FileResponse(STATIC_DIR / "signed-out.html", media_type="text/html")

    @app.get("/oauth2/start")
    def start(flow: str) -> HTMLResponse:
        api.start_hits.append(flow)
        return HTMLResponse("<!doctype html><title>Consent</title><p>The provider asks for consent here.</p>")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Api]]:
    api = Api()
    with LiveServer(build_app(api)) as live:
        yield live.base_url, api


@dataclass
class Ui:
    page: Page
    base_url: str
    api: Api
    watch: PageWatch

    def open(self) -> None:
        self.page.goto(self.base_url + "/connections", wait_until="load")
        expect(self.page.locator("#connection-list")).to_have_attribute("aria-busy", "false")

    def card(self, name: str) -> Any:
        return self.page.get_by_role("region", name=name, exact=True)

    def button(self, card: Any, name: str) -> Any:
        return card.get_by_role("button", name=name, exact=True)

    def status(self) -> Any:
        return self.page.get_by_role("status")


@pytest.fixture
def ui(browser: Browser, server: tuple[str, Api]) -> Iterator[Ui]:
    base_url, api = server
    api.reset()
    context = browser.new_context(locale="en-GB", timezone_id="UTC")
    watch = PageWatch.attach(context, base_url)
    try:
        yield Ui(page=context.new_page(), base_url=base_url, api=api, watch=watch)
    finally:
        context.close()


def failed_load(ui: Ui, status: int, paths: str) -> str:
    """Chromium's own console line for a non-2xx fetch: the browser's, not the page's."""
    return rf"error: Failed to load resource: the server responded with a status of {status} \(.*\) @ {re.escape(ui.base_url)}{paths}"


# --------------------------------------------------------------------------- tests


def test_each_account_is_shown_with_its_status_permissions_and_dates(ui: Ui) -> None:
    ui.api.list_gate.clear()
    ui.page.goto(ui.base_url + "/connections")
    expect(ui.page.get_by_text("Loading your connected accounts…")).to_be_visible()
    expect(ui.page.locator("#connection-list")).to_have_attribute("aria-busy", "true")
    ui.api.list_gate.set()
    expect(ui.page.get_by_text("Loading your connected accounts…")).to_be_hidden()

    expect(ui.page.get_by_role("heading", level=1)).to_have_text("Connected accounts")
    expect(ui.page.get_by_text("Signed in as alice@example.com")).to_be_visible()
    expect(ui.page.get_by_role("link", name="Chat")).to_have_attribute("href", "/")
    expect(ui.page.locator(".connection-title")).to_have_text(["Demo Notes", "GitHub", "Team <b>Chat</b>"])
    assert ui.page.locator("#connection-list b").count() == 0, "server text must never become markup"

    notes, github, team = ui.card("Demo Notes"), ui.card("GitHub"), ui.card("Team <b>Chat</b>")
    expect(notes.locator(".connection-badge")).to_have_text("Status: Connected")
    expect(notes.get_by_role("list", name="Permissions:").get_by_role("listitem")).to_have_text(NOTES_PERMISSIONS)
    expect(notes.locator(".connection-date")).to_have_text(["Connected on 7 Dec 2026, 10:31", "Last used on 9 Dec 2026, 08:05"])
    expect(notes.locator("time").first).to_have_attribute("datetime", "2026-12-07T10:31:00.000Z")
    expect(ui.button(notes, "Disconnect")).to_have_accessible_description("Demo Notes")
    assert ui.button(notes, "Connect").count() == 0

    expect(github.locator(".connection-badge")).to_have_text("Status: Not connected")
    expect(github.locator(".connection-date")).to_have_count(0)
    expect(ui.button(github, "Connect")).to_be_enabled()
    expect(team.locator(".connection-badge")).to_have_text("Status: Disconnected")
    expect(team.locator(".connection-date")).to_have_text(["Connected on 2 Nov 2026, 16:45", "Disconnected on 8 Dec 2026, 09:00"])
    expect(ui.button(team, "Connect")).to_be_enabled()
    assert ui.button(team, "Disconnect").count() == 0
    assert ui.api.posts == []
    ui.watch.assert_clean()


def test_connect_goes_to_the_consent_start_link(ui: Ui) -> None:
    flow = "v1.abc-DEF_123"
    ui.api.answers.append(Answer({"status": "consent_required", "display_name": "GitHub", "start_url": f"/oauth2/start?flow={flow}"}))
    ui.open()
    ui.button(ui.card("GitHub"), "Connect").click()
    ui.page.wait_for_url(f"{ui.base_url}/oauth2/start?flow={flow}")
    assert ui.api.start_hits == [flow]
    assert ui.api.posts == [Post("/api/connections/github/connect", "application/json", b"{}")]
    ui.watch.assert_clean()


def test_connect_answered_connected_shows_the_account_connected(ui: Ui) -> None:
    now_connected = accounts()
    now_connected[2] |= {"status": "connected", "connected_at": NOW, "disconnected_at": None}
    ui.api.answers.append(Answer({"status": "connected", "display_name": "Team <b>Chat</b>"}, then=now_connected))
    ui.open()
    team = ui.card("Team <b>Chat</b>")
    ui.button(team, "Connect").click()
    expect(ui.status()).to_have_text("Team <b>Chat</b> is connected.")
    expect(team.locator(".connection-badge")).to_have_text("Status: Connected")
    expect(team.locator(".connection-date")).to_have_text(["Connected on 10 Dec 2026, 12:00"])
    expect(ui.button(team, "Disconnect")).to_be_focused()
    assert ui.api.posts == [Post("/api/connections/team/connect", "application/json", b"{}")]
    assert ui.page.url == ui.base_url + "/connections"
    ui.watch.assert_clean()


def test_a_start_link_to_anywhere_else_is_refused(ui: Ui) -> None:
    bad = ["https://evil.example/oauth2/start?flow=x", "//evil.example/oauth2/start?flow=x", "javascript:alert(1)", "/oauth2/startx?flow=a"]
    ui.api.answers.extend(Answer({"status": "consent_required", "display_name": "GitHub", "start_url": url}) for url in bad)
    ui.open()
    connect = ui.button(ui.card("GitHub"), "Connect")
    for _ in bad:
        connect.click()
        expect(ui.status()).to_have_text("The agent answered with a sign-in link this page does not trust, so you were not sent there.")
        expect(connect).to_be_enabled()
        expect(connect).to_be_focused()
        ui.status().evaluate("node => { node.textContent = ''; }")  # so the next refusal is seen anew
    assert len(ui.api.posts) == len(bad)
    assert ui.api.start_hits == []
    assert ui.page.url == ui.base_url + "/connections"
    ui.watch.assert_clean()


def test_disconnect_asks_in_the_page_then_sends_one_request(ui: Ui) -> None:
    message = "Disconnected. The agent will not use your Demo Notes account again unless you connect it again."
    after = accounts()
    after[0] |= {"status": "disconnected", "disconnected_at": NOW}
    answer = {"status": "disconnected", "display_name": "Demo Notes", "disconnected_at": NOW, "revocation": "not_offered"}
    ui.api.answers.append(Answer(answer | {"message": message}, then=after))
    ui.open()
    notes = ui.card("Demo Notes")
    question = notes.get_by_role("group", name=re.compile("^Disconnect Demo Notes"))

    ui.button(notes, "Disconnect").click()
    expect(question).to_contain_text("Disconnect Demo Notes? The agent will not use this account until you connect it again.")
    expect(ui.button(question, "Keep connected")).to_be_focused()
    ui.page.keyboard.press("Enter")  # keeps it
    expect(question).to_be_hidden()
    expect(ui.button(notes, "Disconnect")).to_be_focused()
    ui.page.keyboard.press("Enter")  # asks again; Escape keeps it too
    expect(question).to_be_visible()
    ui.page.keyboard.press("Escape")
    expect(ui.button(notes, "Disconnect")).to_be_focused()
    assert ui.api.posts == []

    ui.button(notes, "Disconnect").click()
    ui.button(question, "Disconnect").click()
    expect(ui.status()).to_have_text(message)
    expect(notes.locator(".connection-badge")).to_have_text("Status: Disconnected")
    expect(notes.locator(".connection-date").last).to_have_text("Disconnected on 10 Dec 2026, 12:00")
    expect(ui.button(notes, "Connect")).to_be_focused()
    assert ui.api.posts == [Post("/api/connections/notes/disconnect", "application/json", b"{}")]
    ui.watch.assert_clean()


def test_errors_show_the_servers_sentence_and_leave_the_page_usable(ui: Ui) -> None:
    unavailable = "Your connected accounts cannot be read right now. Please try again in a few seconds."
    busy = "The identity service is busy. Please try again in a few seconds."
    ui.api.list_errors.append(Answer({"error": "connections_unavailable", "message": unavailable}, status=503))
    ui.api.answers.append(Answer({"error": "identity_unavailable", "message": busy}, status=503))
    ui.page.goto(ui.base_url + "/connections")
    expect(ui.status()).to_have_text(unavailable)
    expect(ui.page.locator(".connection-card")).to_have_count(0)

    ui.page.get_by_role("button", name="Try again").click()
    expect(ui.page.locator(".connection-card")).to_have_count(3)
    expect(ui.status()).to_have_text("")
    expect(ui.page.get_by_role("button", name="Try again")).to_be_hidden()

    connect = ui.button(ui.card("GitHub"), "Connect")
    connect.click()
    expect(ui.status()).to_have_text(busy)
    expect(connect).to_be_enabled()
    expect(connect).to_be_focused()
    assert ui.api.start_hits == []
    ui.watch.assert_clean(allowed_console=failed_load(ui, 503, "/api/connections(/github/connect)?"))


def test_no_accounts_is_said_in_words(ui: Ui) -> None:
    ui.api.connections = []
    ui.open()
    expect(ui.page.get_by_text("No accounts are set up for the agent to use.")).to_be_visible()
    expect(ui.page.locator("#connection-list li")).to_have_count(0)
    ui.watch.assert_clean()


def test_the_chat_links_here_and_sign_out_leaves_like_the_chat_page(ui: Ui) -> None:
    ui.page.goto(ui.base_url + "/")
    ui.page.wait_for_function("() => sessionStorage.getItem('agent.user') !== null")  # the chat page knows who is signed in
    ui.page.evaluate("() => sessionStorage.setItem('agent.history', JSON.stringify([{role: 'user', text: 'hello'}]))")
    ui.page.get_by_role("link", name="Connected accounts").click()
    ui.page.wait_for_url(ui.base_url + "/connections")
    expect(ui.page.locator(".connection-card")).to_have_count(3)

    ui.page.get_by_role("button", name="Sign out").click()
    ui.page.wait_for_url(ui.base_url + "/signed-out")
    assert ui.api.posts == [Post("/api/sign-out", "application/json", b"{}")]
    assert ui.page.evaluate("() => [sessionStorage.getItem('agent.history'), sessionStorage.getItem('agent.user')]") == [None, None]
    ui.watch.assert_clean()
