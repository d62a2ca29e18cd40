"""The chat UI in headless Chromium against the real agent and session binding services.

Both services run in-process behind `AlbRouter` (which routes /oauth2/* to the binding service as the
ALB's listener rules do), served by uvicorn on 127.0.0.1, with the loopback stand-ins of AgentCore
Identity, the Bedrock runtime and the demo API from tests/services/conftest.py. What the browser
cannot do itself is stood in for:

* the ALB's sign-in: every request of a context carries an `x-amzn-oidc-data` token minted for the
  person (extra HTTP headers);
* the provider's consent page and AgentCore's callback: https://idp.example.org is a loopback HTTPS
  server (local/standins/consent_page.py) that answers `/authorize` with the redirect AgentCore makes after
  consent, to `/oauth2/session-binding?session_id=<sessionUri>&state=<customState>`.

Chromium resolves no host name but idp.example.org, so nothing leaves 127.0.0.1, and any request to
another origin fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from local.standins.consent_page import ORIGIN as PROVIDER_ORIGIN, ProviderStandIn
from services.common.alb_identity import AlbIdentity
from tests.services.conftest import (  # the service fixtures this module drives, besides the names it uses
    ALICE,
    BOB,
    AgentHarness,
    agent,
    agentcore,
    alb_key,
    bedrock,
    binding_table,
    key_server,
    make_agent,
    make_harness,
    resource,
)
from tests.support.browsing import LiveServer, PageWatch, chromium

__all__ = ["agent", "agentcore", "alb_key", "bedrock", "binding_table", "key_server", "make_agent", "make_harness", "resource"]

TOKEN_LIFETIME_S = 900  # outlives the test: Chromium sends the same header on every request
HOLD_START = re.compile(r".*/oauth2/start\?.*")


@pytest.fixture(scope="module")
def provider() -> Iterator[ProviderStandIn]:
    standin = ProviderStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture(scope="module")
def browser(provider: ProviderStandIn) -> Iterator[Browser]:
    """This module's Chromium: idp.example.org is the provider stand-in, every other host name unresolvable."""
    with chromium(provider.chromium_args()) as launched:
        yield launched


@dataclass
class Person:
    """One browser context, signed in as `user` (the ALB's header on every request), its pages watched."""

    user: AlbIdentity
    context: BrowserContext
    page: Page
    watch: PageWatch


@dataclass
class Site:
    agent: AgentHarness
    provider: ProviderStandIn
    browser: Browser
    base_url: str
    people: list[Person] = field(default_factory=list)

    def sign_in(self, user: AlbIdentity) -> Person:
        token = self.agent.binding.token(user, lifetime_s=TOKEN_LIFETIME_S)
        context = self.browser.new_context(extra_http_headers={"x-amzn-oidc-data": token, "x-amzn-oidc-identity": user.sub})
        person = Person(user, context, context.new_page(), PageWatch.attach(context, self.base_url, PROVIDER_ORIGIN))
        self.people.append(person)
        return person

    def completions(self) -> list[tuple[str, str]]:
        """(sessionUri, userId) of every CompleteResourceTokenAuth the AgentCore stand-in received."""
        return [(call.body["sessionUri"], call.body["userIdentifier"]["userId"]) for call in self.agent.agentcore.completions()]


@pytest.fixture
def site(browser: Browser, provider: ProviderStandIn, agent: AgentHarness) -> Iterator[Site]:
    with LiveServer(agent.app, lifespan="on") as server:
        provider.serve(server.base_url + "/oauth2/session-binding", agent.agentcore.custom_states)
        site = Site(agent, provider, browser, server.base_url)
        try:
            yield site
        finally:
            for person in site.people:
                person.context.close()


def open_chat(person: Person, base_url: str) -> None:
    person.page.goto(base_url + "/", wait_until="load")
    # Once GET /api/session has answered, the page knows whose conversation it holds and enables the composer.
    person.page.wait_for_function("() => sessionStorage.getItem('agent.user') !== null")
    expect(person.page.get_by_role("button", name="Send")).to_be_enabled()


def ask(person: Person, text: str) -> None:
    box = person.page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def authorize_button(person: Person) -> Locator:
    """The permission card the first "Who am I?" brings up, and its button."""
    page = person.page
    card = page.get_by_role("region", name="Demo Notes needs your permission")
    expect(card).to_be_visible()
    # The permissions in words, as configured (tests/services/conftest.py SCOPE_WORDS), never the raw scopes.
    expect(card.get_by_role("listitem")).to_have_text(["See your profile", "Read your notes", "Create, change and delete your notes"])
    button = card.get_by_role("button", name="Authorize Demo Notes")
    expect(button).to_be_focused()
    waiting = page.locator("#messages .entry-tool")
    expect(waiting).to_have_attribute("data-state", "stopped")
    expect(waiting.locator("summary")).to_have_text("get_profile is waiting for your permission")
    return button


def test_consent_round_trip_in_the_browser_resumes_the_request(site: Site) -> None:
    alice = site.sign_in(ALICE)
    page = alice.page
    open_chat(alice, site.base_url)
    ask(alice, "Who am I?")
    authorize = authorize_button(alice)
    assert site.completions() == []

    authorize.click()
    # /oauth2/start -> https://idp.example.org/authorize -> /oauth2/session-binding (AgentCore's redirect).
    expect(page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    assert urlsplit(page.url).path == "/oauth2/session-binding"
    [hit] = site.provider.authorize_hits()
    [(session_uri, user_id)] = site.completions()
    assert user_id == ALICE.sub
    assert parse_qs(urlsplit(hit).query)["request_uri"] == [session_uri]

    page.get_by_role("link", name="Return to the agent").click()
    expect(page.get_by_text("Continuing where you left off…")).to_be_visible()
    tool = page.locator("#messages .entry-tool")
    expect(tool).to_have_attribute("data-state", "ok")
    expect(tool.locator("summary")).to_have_text("Used get_profile")
    answer = page.locator("#messages .bubble-assistant")
    expect(answer).to_have_count(1)
    expect(answer).to_contain_text(ALICE.sub)
    expect(page.get_by_label("Message", exact=True)).to_be_enabled()

    assert urlsplit(page.url).path == "/"
    assert page.locator("#messages .bubble-user").all_text_contents() == ["Who am I?"]
    assert page.get_by_role("button", name="Authorize Demo Notes").count() == 0
    assert page.evaluate("() => sessionStorage.getItem('agent.pending')") is None
    assert len(site.completions()) == 1, "CompleteResourceTokenAuth exactly once"
    assert len(site.provider.hits) == 1
    alice.watch.assert_clean()


def test_a_start_link_opened_by_another_account_is_refused(site: Site) -> None:
    alice = site.sign_in(ALICE)
    page = alice.page
    open_chat(alice, site.base_url)
    ask(alice, "Who am I?")
    authorize = authorize_button(alice)

    # Alice's start link, taken from her card (her own browser is held back from following it).
    page.route(HOLD_START, lambda route: route.fulfill(status=204))
    with page.expect_request(HOLD_START) as started:
        authorize.click()
    start_link = started.value.url
    assert start_link.startswith(site.base_url + "/oauth2/start?flow=")

    # Bob, signed in in his own browser, opens it.
    bob = site.sign_in(BOB)
    response = bob.page.goto(start_link, wait_until="load")
    assert response is not None and response.status == 403
    expect(bob.page.get_by_role("heading", name="This authorization belongs to another account")).to_be_visible()
    assert urlsplit(bob.page.url).path == "/oauth2/start"
    assert site.provider.hits == [], "Bob's browser was not sent to the provider"
    assert site.completions() == [], "no CompleteResourceTokenAuth for a link opened by another account"
    assert bob.context.cookies() == [], "no binding cookie for Bob's browser"
    # Chromium logs the 403 of the page itself; that line is the browser's, not the page's.
    bob.watch.assert_clean(
        allowed_console=r"error: Failed to load resource: the server responded with a status of 403 \(.*\) @ "
        + re.escape(site.base_url + "/oauth2/start?")
        + r".*"
    )

    # Bob's refused visit used up nothing: the link still works for Alice, in her browser.
    page.unroute(HOLD_START)
    page.goto(start_link, wait_until="load")
    expect(page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    assert [user_id for _, user_id in site.completions()] == [ALICE.sub]
    assert len(site.provider.authorize_hits()) == 1
    alice.watch.assert_clean()
