"""End-to-end fixtures: the whole local stack (`local/demo/stack.py`, what `make demo` runs) and
headless Chromium driving it as people do.

What is shared: a stack takes about 2 s (2.4 s of CPU) to start, so each pytest process (each xdist worker)
starts one stack of the default configuration when a test first asks for `stack` or `site`, lends it to every
later test that asks, one test at a time, and stops it at the end of the session. How tests stay apart: by
people instead of by stack.

* the stack knows a pool of accounts (`tests/support/people.py`), and `site.alice` and `site.bob` are accounts
  no earlier test used: another test's consent, the provider's memory of an Allow, the agent's token cache,
  connected accounts, notes and vault grants all belong to other people;
* `site.completions()`, `site.calls(op)` and `site.token_requests()` see only what happened since the test's
  `site` was made, and `site.vault()` only the entries added or changed since then
  (so `site.vault() == {}` still means nothing was stored for anyone during the test);
* what a test changes in the emulator (its clock, the session lifetime, faults, quotas) is put back after it, and
  each test checks IAM against principals of its own (the same keys, its own record of decisions:
  `test_least_privilege.py` takes a statement away there);
* a stack that a test leaves with a service exited or not answering its health probe, or that a failed test
  used, is stopped, and the next test gets a fresh one (a passing test that left it unhealthy gets a warning,
  a failed one the folder of the stack's logs); so does a test that finds the pool used up.

A module that needs another configuration shares a stack of its own between its tests the same way
(`echo_off_stack` in `test_initiator_attack.py`: `SharedStack` with other settings, `lent`). With
`DOCS_IMAGES=1` every test gets a stack of its own too, so the README's pictures show alice@example.org, as
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
import urllib.error
import urllib.request
import warnings
import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from local.demo.stack import SERVICE_APPS, DemoStack
from local.idp import CONSENT_TITLE, OIDC_PROVIDER_DIR, SIGN_IN_TITLE, DemoUser
from tests.support.browsing import PageWatch
from tests.support.people import ROLES, People, pool

ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"  # written only with DOCS_IMAGES=1
SESSION_TTL_S = 600
PEOPLE_PER_ROLE = 32  # more Alices (and Bobs) than tests share a stack in one process: a pool lasts the session
HEALTH_TIMEOUT_S = 5.0


# ---------------------------------------------------------------------- the stack, shared


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test itself failed, so the `site` fixture can photograph every page
    and the `stack` fixture can replace a shared stack the test may have left in a state of its own."""
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


def require_oidc_provider() -> None:
    if not OIDC_PROVIDER_DIR.is_dir():
        message = "node_modules/oidc-provider is missing (make install runs npm ci)"
        if os.environ.get("REQUIRE_CHROMIUM") or os.environ.get("REQUIRE_NODE_IDP"):
            pytest.fail(message)
        pytest.skip(message)


_PEOPLE: weakref.WeakKeyDictionary[DemoStack, People] = weakref.WeakKeyDictionary()


def people_of(stack: DemoStack) -> People:
    """The accounts of `stack` that no test has taken yet (kept as long as the stack is)."""
    if stack not in _PEOPLE:
        _PEOPLE[stack] = People(stack.users)
    return _PEOPLE[stack]


def health_problem(stack: DemoStack) -> str | None:
    """Why `stack` cannot serve another test (a process ended, a server does not answer), or None."""
    if exited := stack.exited():
        return "exited: " + ", ".join(exited)
    if not stack.dynamodb.running:
        return "the local DynamoDB is not running"
    probes = (
        stack.public_url + "/health",  # the local ALB, and the agent behind it
        *(stack.service_url(name) + "/health" for name in SERVICE_APPS),
        stack.sign_in_issuer + "/.well-known/openid-configuration",
        stack.consent_issuer + "/.well-known/openid-configuration",
        stack.emulator.base_url + "/ping",
    )
    for url in probes:
        try:
            with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:  # noqa: S310 - loopback
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            return f"{url}: {exc}"
        if status != 200:
            return f"{url} answered {status}"
    return None


class SharedStack:
    """A stack lent to one test after another (this process's of the default configuration, or one of another
    configuration given by `stack_kwargs`), with a pool of accounts: started when a test first needs it, and
    replaced when it cannot serve the next test (unhealthy, or every Alice or Bob taken)."""

    def __init__(self, log_root: Path, **stack_kwargs: Any) -> None:
        self.log_root = log_root
        self.stack_kwargs = stack_kwargs
        self.current: DemoStack | None = None
        self.started = 0
        self._first_account = 1  # accounts are numbered on across stacks: a name is never seen twice in a process

    def get(self) -> DemoStack:
        # The full health probe ran when the last test ended (`lent`); here only what can change while idle.
        if self.current is not None and (min(people_of(self.current).left(r) for r in ROLES) == 0 or self.current.exited()):
            self.discard()
        if self.current is None:
            users = pool(self._first_account, PEOPLE_PER_ROLE)
            self._first_account += PEOPLE_PER_ROLE
            self.started += 1
            log_dir = self.log_root / f"stack-{self.started}"
            self.current = DemoStack.on_free_ports(log_dir=log_dir, session_ttl_s=SESSION_TTL_S, users=users, **self.stack_kwargs)
        return self.current

    def discard(self) -> None:
        stack, self.current = self.current, None
        if stack is not None:
            stack.stop()


@contextlib.contextmanager
def emulator_restored(stack: DemoStack) -> Iterator[None]:
    """What a test changes in the emulator (its clock, the session lifetime, faults, quotas) and in IAM is put back
    after it. IAM: the test gets principals of its own (the same keys, its own record of decisions, which
    `test_least_privilege.py` reads), and the stack's come back after it."""
    emulator, service = stack.emulator, stack.emulator.service
    offset, ttl, slow, principals = service.offset_s, service.settings.session_ttl_s, emulator.slow_s, stack.principals
    if principals is not None:
        stack.use_principals(principals.fresh())
    try:
        yield
    finally:
        service.advance_clock(offset - service.offset_s)
        service.settings.session_ttl_s = ttl
        emulator.slow_s = slow
        emulator.faults.clear()  # the shared stack starts with no faults and no quotas
        emulator.quotas.clear()
        if principals is not None:
            stack.use_principals(principals)


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    shared = SharedStack(tmp_path_factory.mktemp("shared-stack"))
    try:
        yield shared
    finally:
        shared.discard()


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


@contextlib.contextmanager
def lent(shared: SharedStack, request: pytest.FixtureRequest) -> Iterator[DemoStack]:
    """`shared`'s stack for this test: put back as it was after it, and replaced if the test failed or left it unhealthy."""
    demo = shared.get()
    try:
        with emulator_restored(demo):
            yield demo
    finally:
        # A failed test may leave requests in flight that the next test's counts would see.
        failed, problem = request.node.stash.get(FAILED, False), health_problem(demo)
        if failed:
            print(f"the shared stack's logs (earlier tests' lines first): {demo.log_dir}")
        elif problem:
            warnings.warn(f"the test passed but left the shared stack unhealthy ({problem}); the next test gets a new one", stacklevel=1)
        if failed or problem:
            shared.discard()


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


@dataclass(frozen=True)
class Baseline:
    """What the stack had seen when a test's site was made: the site's views count from here."""

    calls: dict[str, int]
    vault: dict[str, str]
    token_requests: dict[tuple[str, str], int]

    @classmethod
    def of(cls, stack: DemoStack) -> Baseline:
        return cls(stack.emulator.stats(), stack.emulator.vault_snapshot(), _token_requests(stack))


def _token_requests(stack: DemoStack) -> dict[tuple[str, str], int]:
    service = stack.emulator.service
    with service.lock:
        return dict(service.token_requests)


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
        return self.stack.emulator.count(operation) - self.before.calls.get(operation, 0)

    def completions(self) -> int:
        return self.calls("CompleteResourceTokenAuth")

    def vault(self) -> dict[str, str]:
        """The vault's entries added or changed since the test began: `workload|user|provider|scopes` -> token digest."""
        return {key: digest for key, digest in self.stack.emulator.vault_snapshot().items() if self.before.vault.get(key) != digest}

    def token_requests(self) -> dict[tuple[str, str], int]:
        """Requests the emulator sent to token endpoints since the test began, by (provider, client authentication)."""
        before = self.before.token_requests
        return {key: count - before.get(key, 0) for key, count in _token_requests(self.stack).items() if count != before.get(key, 0)}


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
