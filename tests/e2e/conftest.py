"""End-to-end fixtures: the whole local stack (`local/demo/stack.py`, what `make demo` runs) and
headless Chromium driving it as people do.

Every test gets a fresh stack on free loopback ports (about 1.5 s to start), so one test's consent
cannot satisfy another's prompt, and the emulator's vault and call counts start empty. Screenshots
go to tests/e2e/artifacts/<test name>/.

The browser reaches four origins, all on 127.0.0.1: the local ALB (the agent), the sign-in issuer,
the notes API's authorization server and AgentCore's callback (the emulator). Requests elsewhere
are aborted and recorded (`PageWatch`); the tests that end on a page of their own also check the
console. When a test fails, every person's page is photographed as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from local.demo.stack import DemoStack
from local.idp import CONSENT_TITLE, OIDC_PROVIDER_DIR, SIGN_IN_TITLE, DemoUser
from tests.support.browsing import PageWatch

ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"  # written only with DOCS_IMAGES=1
SESSION_TTL_S = 600


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DemoStack]:
    if not OIDC_PROVIDER_DIR.is_dir():
        message = "node_modules/oidc-provider is missing (make install runs npm ci)"
        if os.environ.get("REQUIRE_CHROMIUM") or os.environ.get("REQUIRE_NODE_IDP"):
            pytest.fail(message)
        pytest.skip(message)
    demo = DemoStack.on_free_ports(log_dir=tmp_path / "logs", session_ttl_s=SESSION_TTL_S)
    try:
        yield demo
    finally:
        demo.stop()


@dataclass
class Person:
    user: DemoUser
    context: BrowserContext
    page: Page
    watch: PageWatch
    shots: Path
    taken: list[Path] = field(default_factory=list)

    def shot(self, name: str, *, docs: str | None = None) -> None:
        """A screenshot of the page as it is now, numbered in the order taken. With `docs`, and
        `DOCS_IMAGES=1` in the environment, also `docs/images/<docs>.png` (the README's pictures)."""
        path = self.shots / f"{len(self.taken) + 1:02d}-{self.user.username}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        if docs is not None and os.environ.get("DOCS_IMAGES") == "1":
            DOCS_IMAGES.mkdir(exist_ok=True)
            self.page.screenshot(path=str(DOCS_IMAGES / f"{docs}.png"))


@dataclass
class Site:
    stack: DemoStack
    browser: Browser
    shots: Path
    people: list[Person] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.stack.public_url

    def origins(self) -> tuple[str, ...]:
        return (self.stack.public_url, self.stack.sign_in_issuer, self.stack.consent_issuer, self.stack.emulator.base_url)

    def person(self, user: DemoUser) -> Person:
        """A new browser (context) for `user`, not signed in anywhere yet."""
        context = self.browser.new_context()
        person = Person(user, context, context.new_page(), PageWatch.attach(context, *self.origins()), self.shots)
        self.people.append(person)
        return person

    def completions(self) -> int:
        return self.stack.emulator.count("CompleteResourceTokenAuth")

    def vault(self) -> dict[str, str]:
        return self.stack.emulator.vault_snapshot()


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test itself failed, so the `site` fixture can photograph every page."""
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


@pytest.fixture
def site(stack: DemoStack, browser: Browser, request: pytest.FixtureRequest) -> Iterator[Site]:
    shots = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    site = Site(stack, browser, shots)
    try:
        yield site
    finally:
        failed = request.node.stash.get(FAILED, False)
        for person in site.people:
            if failed:
                with contextlib.suppress(Exception):  # a page that cannot be photographed must not hide the failure
                    person.shot("at-failure")
            person.context.close()


# ---------------------------------------------------------------------- what people do


def fill_login(page: Page, user: DemoUser, title: str) -> None:
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()


def sign_in(site: Site, person: Person, *, shot: bool = False) -> None:
    """Open the agent: the local ALB sends the browser to the sign-in issuer, then back."""
    page = person.page
    page.goto(site.url + "/", wait_until="load")
    if shot:
        person.shot("sign-in")
    fill_login(page, person.user, SIGN_IN_TITLE)
    page.wait_for_url(site.url + "/")
    page.wait_for_function("() => sessionStorage.getItem('agent.user') !== null")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def ask(person: Person, text: str) -> None:
    box = person.page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def authorize_button(person: Person) -> Locator:
    card = person.page.get_by_role("region", name="Demo Notes needs your permission").last
    expect(card).to_be_visible()
    button = card.get_by_role("button", name="Authorize Demo Notes")
    expect(button).to_be_visible()
    return button


def consent(person: Person, *, shot: bool = False, allow: bool = True) -> None:
    """At the notes API's authorization server: sign in there, then Allow (or Deny)."""
    page = person.page
    fill_login(page, person.user, CONSENT_TITLE)
    expect(page.get_by_role("button", name="Allow")).to_be_visible()
    if shot:
        person.shot("consent", docs="provider-consent")
    page.get_by_role("button", name="Allow" if allow else "Deny").click()


def authorize(person: Person, display_name: str) -> None:
    """Press the permission card's button for the provider people know as `display_name`."""
    card = person.page.get_by_role("region", name=f"{display_name} needs your permission").last
    expect(card).to_be_visible()
    card.get_by_role("button", name=f"Authorize {display_name}").click()


def allow(person: Person) -> None:
    """At the demo authorization server: sign in there unless this browser already is, Allow, and return to the agent."""
    page = person.page
    button = page.get_by_role("button", name="Allow")
    if not button.is_visible():
        fill_login(page, person.user, CONSENT_TITLE)
    expect(button).to_be_visible()
    button.click()
    expect(page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    page.get_by_role("link", name="Return to the agent").click()


def assistant_says(person: Person, text: str) -> None:
    expect(person.page.locator("#messages .bubble-assistant").last).to_contain_text(text)
