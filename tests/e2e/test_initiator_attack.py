"""The initiator completing a consent that another person's browser gave (threat T3), through the
whole local stack in Chromium, with the notes issuer skipping its consent page for an app the person
already approved, as GitHub, Google and Cognito do.

1. Alice has connected the notes API once: she has a grant, and a session at its authorization server.
2. Bob signs in, asks for his notes, opens his own start link and keeps the provider URL it sends him to.
   His browser now holds the binding cookie; the sessionUri is readable in his flow token.
3. Alice's browser is made to open Bob's provider URL. No consent page: AgentCore's callback stores her
   code under Bob's session and sends her browser to the session binding URL.
4. Bob opens the session binding URL himself, with his cookie.

With the defaults, every ordering of 3 and 4 ends with Bob's session cancelled and nothing in the vault
for Bob, and Alice told the truth. With the echo requirement turned off (a setting for accounts where
AgentCore does not echo `customState`), the other defences still stop every ordering but one: Bob
completing in the moment between AgentCore's callback and Alice's landing. That race is shown here too,
with what Alice then sees.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from local.demo.stack import DemoStack
from services.session_binding import pages
from tests.e2e.conftest import Person, Site, ask, authorize_button, consent, open_site, sign_in
from tests.support.shared_stack import SharedStack, lent, require_oidc_provider

LANDING = re.compile(r".*/oauth2/session-binding\?.*")
HOLD_START = re.compile(r".*/oauth2/start\?.*")


@pytest.fixture(scope="module")
def echo_off_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    """One stack with `binding_require_state=false` (`REQUIRE_CUSTOM_STATE=false`) for this module's tests."""
    shared = SharedStack(tmp_path_factory.mktemp("echo-off"), service_env={"session_binding": {"REQUIRE_CUSTOM_STATE": "false"}})
    try:
        yield shared
    finally:
        shared.discard()


@pytest.fixture
def echo_off_stack(echo_off_shared: SharedStack, request: pytest.FixtureRequest) -> Iterator[DemoStack]:
    require_oidc_provider()
    with lent(echo_off_shared, request) as demo:
        yield demo


@pytest.fixture
def echo_off(echo_off_stack: DemoStack, browser: Browser, request: pytest.FixtureRequest) -> Iterator[Site]:
    """The site on that stack, with an Alice and a Bob no earlier test used."""
    with open_site(echo_off_stack, browser, request) as site:
        yield site


# ---------------------------------------------------------------------- the attack's steps


def alice_connects_once(site: Site) -> Person:
    """Step 1: Alice consents for herself; her browser keeps its session at the notes issuer."""
    alice = site.person(site.alice)
    sign_in(site, alice)
    ask(alice, "show my notes")
    authorize_button(alice).click()
    consent(alice)
    expect(alice.page.get_by_role("heading", name=pages.SUCCESS.title)).to_be_visible()
    return alice


def bobs_provider_url(site: Site) -> tuple[Person, str, str]:
    """Step 2: Bob starts his own flow; his browser is held at the provider URL (binding cookie set).
    Returns Bob, the provider URL and his sessionUri, read from his own flow token."""
    bob = site.person(site.bob)
    sign_in(site, bob)
    ask(bob, "show my notes")
    button = authorize_button(bob)
    provider = re.compile(re.escape(site.stack.consent_issuer) + r"/oauth2/authorize\?.*")
    bob.page.route(provider, lambda route: route.fulfill(status=204))  # keep the URL; do not go there
    with bob.page.expect_request(HOLD_START) as started, bob.page.expect_request(provider) as sent:
        button.click()
    bob.page.unroute(provider)
    assert any(c["name"].startswith("__Host-agentcore-binding-") for c in bob.context.cookies()), "Bob's browser is bound"
    return bob, sent.value.url, session_of(started.value.url)


def session_of(start_link: str) -> str:
    """The sessionUri in a flow token: signed, not encrypted, so its owner can read it."""
    token = parse_qs(urlsplit(start_link).query)["flow"][0]
    body = token.split(".")[2]
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return str(payload["sid"])


def alice_opens(alice: Person, url: str, *, hold_landing: bool = False) -> str:
    """Step 3: Alice's browser opens Bob's provider URL. No consent page (she approved this app before):
    straight through AgentCore's callback to the landing. Returns the landing URL.

    `hold_landing`: the landing does not reach the binding service (yet): Alice's browser state (her
    cookies at the provider) makes the same requests hop by hop, without following the last redirect.
    Playwright cannot hold a request that is itself the target of a redirect, so this is how the tests
    put Bob's request between AgentCore's callback and Alice's landing."""
    if not hold_landing:
        with alice.page.expect_request(LANDING) as landing:
            alice.page.goto(url)
        expect(alice.page.get_by_role("button", name="Allow")).to_have_count(0)  # no consent page was shown
        return landing.value.url
    for _ in range(6):
        hop = alice.context.request.get(url, max_redirects=0)
        assert hop.status in (302, 303), (hop.status, hop.text()[:300])
        url = urljoin(url, hop.headers["location"])
        if LANDING.fullmatch(url):
            return url  # AgentCore's callback has run: her code is stored under the session
    raise AssertionError("no landing after six redirects")


def bob_completes_by_hand(site: Site, bob: Person, session: str) -> Page:
    """Step 4: Bob types the session binding URL, with the sessionUri from his flow token, no `state`."""
    bob.page.goto(f"{site.url}/oauth2/session-binding?session_id={quote(session, safe='')}")
    return bob.page


def heading(page: Page, title: str) -> None:
    expect(page.get_by_role("heading", name=title)).to_be_visible()


def vault_for(site: Site, username_sub: str) -> list[str]:
    return [key for key in site.vault() if f"|{username_sub}|" in key]


# ---------------------------------------------------------------------- with the defaults


def test_the_attack_fails_and_alice_is_told_the_truth(site: Site) -> None:
    """The attack as filed: Alice's landing first, then Bob by hand."""
    alice = alice_connects_once(site)
    vault = site.vault()
    bob, url, session = bobs_provider_url(site)

    landing = alice_opens(alice, url)
    assert parse_qs(urlsplit(landing).query)["session_id"] == [session]
    heading(alice.page, pages.CANCELLED_NOT_YOURS.title)  # not "nothing was changed" on a 403 that changed nothing
    alice.shot("someone-else-started-this", docs="refusal")

    heading(bob_completes_by_hand(site, bob, session), pages.CANCELLED_ELSEWHERE.title)
    bob.shot("cancelled")
    assert site.vault() == vault, "nothing stored for Bob"
    assert vault_for(site, site.bob.sign_in_sub) == []
    assert site.completions() == 1  # Alice's own, from step 1

    # And Bob's agent still knows nothing of Alice.
    bob.page.goto(site.url + "/")
    ask(bob, "show my notes")
    authorize_button(bob)


def test_bob_by_hand_before_alices_landing_cancels_it_for_both(site: Site) -> None:
    alice = alice_connects_once(site)
    vault = site.vault()
    bob, url, session = bobs_provider_url(site)

    landing = alice_opens(alice, url, hold_landing=True)  # AgentCore has her code; her landing is late
    heading(bob_completes_by_hand(site, bob, session), pages.STATE_NOT_ECHOED.title)
    alice.page.goto(landing)
    heading(alice.page, pages.CANCELLED_NOT_YOURS.title)
    assert site.vault() == vault and site.completions() == 1


def test_bob_by_hand_when_alices_landing_never_comes(site: Site) -> None:
    alice = alice_connects_once(site)
    vault = site.vault()
    bob, url, session = bobs_provider_url(site)

    alice_opens(alice, url, hold_landing=True)
    heading(bob_completes_by_hand(site, bob, session), pages.STATE_NOT_ECHOED.title)
    bob.page.reload()  # still cancelled: one try, and it is spent
    heading(bob.page, pages.STATE_NOT_ECHOED.title)
    assert site.vault() == vault and site.completions() == 1


def test_bob_replaying_alices_landing_url_with_the_echo_gets_nothing(site: Site) -> None:
    """Even holding the landing URL with its secret `state` (say, from a proxy log), Bob's session was
    cancelled the moment Alice's browser came back with it."""
    alice = alice_connects_once(site)
    vault = site.vault()
    bob, url, _session = bobs_provider_url(site)
    landing = alice_opens(alice, url)
    bob.page.goto(landing)
    heading(bob.page, pages.CANCELLED_ELSEWHERE.title)
    assert site.vault() == vault and site.completions() == 1


# ---------------------------------------------------------------------- with the echo requirement off


def test_echo_off_alices_landing_first_still_cancels_bobs_session(echo_off: Site) -> None:
    site = echo_off
    alice = alice_connects_once(site)
    vault = site.vault()
    bob, url, session = bobs_provider_url(site)
    alice_opens(alice, url)
    heading(alice.page, pages.CANCELLED_NOT_YOURS.title)
    heading(bob_completes_by_hand(site, bob, session), pages.CANCELLED_ELSEWHERE.title)
    assert site.vault() == vault and site.completions() == 1


def test_echo_off_bob_before_agentcores_callback_burns_his_session(echo_off: Site) -> None:
    """Bob tries before Alice's browser has been to the provider: AgentCore refuses (no code yet), and
    that refusal cancels the session, so the one moment that matters can no longer be waited for."""
    site = echo_off
    alice = alice_connects_once(site)
    vault = site.vault()
    bob, url, session = bobs_provider_url(site)
    heading(bob_completes_by_hand(site, bob, session), pages.AGENTCORE_REFUSED.title)
    alice_opens(alice, url)
    heading(alice.page, pages.CANCELLED_NOT_YOURS.title)
    assert site.vault() == vault
    assert site.completions() == 2  # calls: Alice's own, and Bob's early one, which AgentCore refused


def test_echo_off_the_remaining_race_and_what_alice_sees(echo_off: Site) -> None:
    """The one ordering the other defences cannot stop without the echo: Bob completes after AgentCore's
    callback and before Alice's landing arrives (a window of one redirect, and he gets one try). This is
    why the echo is required by default. Alice's page then says her access may have gone to another
    account and what to do."""
    site = echo_off
    alice = alice_connects_once(site)
    bob, url, session = bobs_provider_url(site)
    landing = alice_opens(alice, url, hold_landing=True)
    heading(bob_completes_by_hand(site, bob, session), pages.SUCCESS.title)
    assert len(vault_for(site, site.bob.sign_in_sub)) == 1, "the race, won: the reason the echo is on by default"
    alice.page.goto(landing)
    heading(alice.page, pages.POSSIBLY_SHARED.title)
    expect(alice.page.get_by_text("Reference:")).to_be_visible()
    alice.shot("possibly-shared")
