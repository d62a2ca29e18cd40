"""End-to-end fixtures: the whole local stack (`local/demo/stack.py`, what `make demo` runs) and
headless Chromium driving it as people do.

The stack is this process's shared one (`tests/support/shared_stack.py`: lent to one test after another, tests
kept apart by people): `site.alice` and `site.bob` are accounts no earlier test used; `site.completions()`,
`site.calls(op)` and `site.token_requests()` see only what happened since the test's `site` was made, and
`site.vault()` only the entries added or changed since then (so `site.vault() == {}` still means nothing was
stored for anyone during the test); `test_least_privilege.py` takes a statement away from the test's own
principals. A module that needs another configuration shares a stack of its own between its tests the same way
(`echo_off_stack` in `test_initiator_attack.py`: `SharedStack` with other settings, `lent`). With
`DOCS_IMAGES=1` every test gets a stack of its own, so the README's pictures show alice@example.org, as
`make demo` does. Screenshots go to tests/e2e/artifacts/<test name>/.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from local.demo.stack import DemoStack
from local.idp import CONSENT_TITLE, SIGN_IN_TITLE, DemoUser
from tests.support.browsing import PageWatch
from tests.support.outcome import FAILED
from tests.support.shared_stack import SESSION_TTL_S, Baseline, SharedStack, lent, people_of, require_oidc_provider

ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"  # written only with DOCS_IMAGES=1


# ---------------------------------------------------------------------- the stack, shared


@pytest.fixture
def stack(shared_stack: SharedStack, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DemoStack]:
    """The default configuration: this process's shared stack, put back as it was after the test, and replaced
    if the test failed or left it unhealthy. With DOCS_IMAGES=1, a stack of the test's own with the demo's accounts."""
    require_oidc_provider()
    if os.environ.get("DOCS_IMAGES") == "1":
        demo = DemoStack.on_free_ports(log_dir=tmp_path / "logs", session_ttl_s=SESSION_TTL_S)
        try:
            yield demo
        finally:
            demo.stop()
        return
    with lent(shared_stack, request) as demo:
        yield demo


# ---------------------------------------------------------------------- people and the site


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
    """One test's view of a stack: its people, and what happened since it began."""

    stack: DemoStack
    browser: Browser
    shots: Path
    people: list[Person] = field(default_factory=list)
    users: dict[str, DemoUser] = field(default_factory=dict)  # by role, once taken
    before: Baseline = field(init=False)

    def __post_init__(self) -> None:
        self.before = Baseline.of(self.stack)

    @property
    def url(self) -> str:
        return self.stack.public_url

    @property
    def alice(self) -> DemoUser:
        """This test's Alice: an account no other test used; the same one all through this test."""
        return self.user("alice")

    @property
    def bob(self) -> DemoUser:
        """This test's Bob, like `alice`."""
        return self.user("bob")

    def user(self, role: str) -> DemoUser:
        if role not in self.users:
            self.users[role] = people_of(self.stack).take(role)
        return self.users[role]

    def origins(self) -> tuple[str, ...]:
        return (self.stack.public_url, self.stack.sign_in_issuer, self.stack.consent_issuer, self.stack.emulator.base_url)

    def person(self, user: DemoUser) -> Person:
        """A new browser (context) for `user`, not signed in anywhere yet."""
        context = self.browser.new_context()
        person = Person(user, context, context.new_page(), PageWatch.attach(context, *self.origins()), self.shots)
        self.people.append(person)
        return person

    def calls(self, operation: str) -> int:
        """The emulator's calls of `operation` (an AWS operation name) since the test began."""
        return self.before.calls_since(self.stack, operation)

    def completions(self) -> int:
        return self.calls("CompleteResourceTokenAuth")

    def vault(self) -> dict[str, str]:
        """The vault's entries added or changed since the test began: `workload|user|provider|scopes` -> token digest."""
        return self.before.vault_since(self.stack)

    def token_requests(self) -> dict[tuple[str, str], int]:
        """Requests the emulator sent to token endpoints since the test began, by (provider, client authentication)."""
        return self.before.token_requests_since(self.stack)


@contextlib.contextmanager
def open_site(stack: DemoStack, browser: Browser, request: pytest.FixtureRequest) -> Iterator[Site]:
    """The test's site on `stack`; afterwards every browser is closed (and, if the test failed, photographed first)."""
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


@pytest.fixture
def site(stack: DemoStack, browser: Browser, request: pytest.FixtureRequest) -> Iterator[Site]:
    with open_site(stack, browser, request) as opened:
        yield opened


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
