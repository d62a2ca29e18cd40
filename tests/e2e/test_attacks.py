"""Attacks on the consent flow, each through the whole local stack, each leaving the vault unchanged.

The vault is the emulator's (AgentCore Identity's) token store: an attack that got a grant stored
for the wrong person, or in the wrong browser, would show there.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from local.alb.keys import AlbSigningKey
from local.demo.stack import ALB_ARN, ALB_CLIENT_ID
from services.session_binding import pages
from tests.e2e.conftest import Person, Site, ask, authorize_button, consent, sign_in
from tests.support.person import ScriptedPerson, event
from tests.support.shared_stack import SESSION_TTL_S

HOLD_START = re.compile(r".*/oauth2/start\?.*")
DATA_PLANE = ("GetWorkloadAccessTokenForUserId", "GetResourceOauth2Token", "CompleteResourceTokenAuth")
OTHER_USER = pages.OTHER_USER.title


def start_link(site: Site, person: Person) -> str:
    """The person's start link from the permission card; their own browser is held back from it."""
    page = person.page
    sign_in(site, person)
    ask(person, "show my notes")
    button = authorize_button(person)
    page.route(HOLD_START, lambda route: route.fulfill(status=204))
    with page.expect_request(HOLD_START) as started:
        button.click()
    page.unroute(HOLD_START)
    link = started.value.url
    assert link.startswith(site.url + "/oauth2/start?flow=")
    return link


def authorization_url(site: Site, person: Person) -> str:
    """The person clicks Authorize; returns the provider URL their flow produced (their browser is at its sign-in page)."""
    sign_in(site, person)
    ask(person, "show my notes")
    button = authorize_button(person)
    with person.page.expect_request(lambda r: r.url.startswith(site.stack.consent_issuer + "/oauth2/authorize?")) as sent:
        button.click()
    expect(person.page.get_by_role("button", name="Sign in")).to_be_visible()
    return sent.value.url


def test_bob_opening_alices_start_link_is_refused(site: Site) -> None:
    alice, bob = site.person(site.alice), site.person(site.bob)
    link = start_link(site, alice)
    sign_in(site, bob)
    response = bob.page.goto(link)
    assert response is not None and response.status == 403
    expect(bob.page.get_by_role("heading", name=OTHER_USER)).to_be_visible()
    bob.shot("start-link-refused")
    assert not any(c["name"].startswith("__Host-agentcore-binding-") for c in bob.context.cookies()), "no binding cookie for Bob"
    assert site.vault() == {} and site.completions() == 0

    # Bob's visit used up nothing: the link still works for Alice, in her browser.
    alice.page.goto(link)
    consent(alice)
    expect(alice.page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    assert site.completions() == 1 and len(site.vault()) == 1


def test_consent_url_forwarded_to_bob_lands_in_bobs_browser_and_is_refused(site: Site) -> None:
    """Login CSRF: Alice's authorization URL, consented to by Bob with his provider account. AgentCore
    sends Bob's browser back to the binding service, which refuses: Bob did not start this flow."""
    alice, bob = site.person(site.alice), site.person(site.bob)
    url = authorization_url(site, alice)
    sign_in(site, bob)
    bob.page.goto(url)
    consent(bob)
    # Bob's browser holds no binding cookie for this flow: refused, and Alice's session cancelled for good.
    expect(bob.page.get_by_role("heading", name=pages.CANCELLED_NOT_YOURS.title)).to_be_visible()
    assert "session_id" in parse_qs(urlsplit(bob.page.url).query)
    bob.shot("forwarded-consent-refused")
    assert site.vault() == {}, "no grant stored for anyone"
    assert site.completions() == 0


def test_alice_finishing_in_a_second_browser_is_refused(site: Site) -> None:
    """same-browser mode: the person who started, signed in as herself, but in a browser without the binding cookie."""
    first, second = site.person(site.alice), site.person(site.alice)
    url = authorization_url(site, first)
    sign_in(site, second)
    second.page.goto(url)
    consent(second)
    expect(second.page.get_by_role("heading", name=pages.CANCELLED_ELSEWHERE.title)).to_be_visible()
    second.shot("second-browser-refused")
    assert site.vault() == {} and site.completions() == 0


def test_a_replayed_session_id_completes_nothing_more(site: Site) -> None:
    alice = site.person(site.alice)
    sign_in(site, alice)
    ask(alice, "show my notes")
    authorize_button(alice).click()
    consent(alice)
    expect(alice.page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    landing = alice.page.url
    vault = site.vault()
    assert site.completions() == 1 and len(vault) == 1

    # The same browser reloads: the success page again, from the signed "bound" cookie, without a call.
    alice.page.reload()
    expect(alice.page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    # Bob replays the landing URL in his browser; Alice replays it in another browser of hers.
    bob, elsewhere = site.person(site.bob), site.person(site.alice)
    for person, heading, status in ((bob, pages.OTHER_USER.title, 403), (elsewhere, pages.ALREADY_COMPLETE.title, 410)):
        sign_in(site, person)
        response = person.page.goto(landing)
        assert response is not None and response.status == status
        expect(person.page.get_by_role("heading", name=heading)).to_be_visible()
    # And a script with Alice's cookies but without the ALB session gets no further than the sign-in.
    script = httpx.get(landing, cookies={c["name"]: c["value"] for c in alice.context.cookies() if c["name"].startswith("__Host-")})
    assert script.status_code == 302 and script.headers["location"].startswith(site.stack.sign_in_issuer)
    assert site.completions() == 1, "CompleteResourceTokenAuth exactly once"
    assert site.vault() == vault


def _forged_tokens(site: Site) -> dict[str, str]:
    alb = site.stack.alb_key
    attacker = AlbSigningKey()
    other_alb = ALB_ARN.replace("local-demo", "someone-else")
    common: dict[str, Any] = {"sub": site.alice.sign_in_sub, "issuer": site.stack.sign_in_issuer, "client_id": ALB_CLIENT_ID}
    padded = alb.mint(signer=ALB_ARN, **common)
    return {
        "own key, unknown kid": attacker.mint(signer=ALB_ARN, **common),
        "own key, the ALB's kid": attacker.mint(signer=ALB_ARN, header={"kid": alb.kid}, **common),
        "another load balancer": alb.mint(signer=other_alb, **common),
        "alg none": padded.rsplit(".", 1)[0].replace(padded.split(".")[0], _none_header(alb.kid)) + ".",
        "another client": alb.mint(signer=ALB_ARN, sub=site.alice.sign_in_sub, issuer=site.stack.sign_in_issuer, client_id="other"),
        "expired": alb.mint(signer=ALB_ARN, lifetime_s=-60, **common),
    }


def _none_header(kid: str) -> str:
    head = {"typ": "JWT", "kid": kid, "alg": "none", "signer": ALB_ARN, "client": ALB_CLIENT_ID}
    return base64.urlsafe_b64encode(json.dumps(head).encode()).decode()


@pytest.mark.parametrize("target", ["agent", "session_binding"])
def test_forged_alb_headers_sent_straight_to_a_service_port_are_refused(site: Site, target: str) -> None:
    stack = site.stack
    before = {op: stack.emulator.count(op) for op in DATA_PLANE}
    base = stack.service_url(target)
    paths = (
        ["/api/session", "/api/chat"]
        if target == "agent"
        else ["/oauth2/start?flow=v1.local-1.e30.x", "/oauth2/session-binding?session_id=urn:ietf:params:oauth:request_uri:abc"]
    )
    for name, token in _forged_tokens(site).items():
        for path in paths:
            headers = {"x-amzn-oidc-data": token, "x-amzn-oidc-identity": site.alice.sign_in_sub, "x-amzn-oidc-accesstoken": "forged"}
            if path == "/api/chat":
                response = httpx.post(base + path, headers=headers, json={"message": "show my notes"})
            else:
                response = httpx.get(base + path, headers=headers)
            assert response.status_code == 401, f"{name} at {path}: {response.status_code}"
    assert {op: stack.emulator.count(op) for op in DATA_PLANE} == before, "no AgentCore call for a forged identity"
    assert site.vault() == {}


def test_the_local_alb_strips_identity_headers_a_client_sends(site: Site) -> None:
    token = next(iter(_forged_tokens(site).values()))
    forged = {"x-amzn-oidc-data": token, "x-amzn-oidc-identity": site.bob.sign_in_sub}
    # Not signed in: the forged header does not sign anyone in.
    assert httpx.get(site.url + "/api/session", headers=forged).status_code == 401
    assert httpx.get(site.url + "/oauth2/start?flow=x", headers=forged).status_code == 302
    # Signed in as Alice: the services see Alice, whatever the client claims.
    alice, bob = ScriptedPerson(site.alice.username, site.alice.password), ScriptedPerson(site.bob.username, site.bob.password)
    try:
        for person in (alice, bob):
            person.open_agent(site.url)
        alice_is, bob_is = (p.send("GET", site.url + "/api/session").json()["user"] for p in (alice, bob))
        assert alice_is != bob_is
        seen = alice.send("GET", site.url + "/api/session", headers=forged)
        assert seen.status_code == 200 and seen.json()["user"] == alice_is
    finally:
        alice.close()
        bob.close()


def test_an_expired_authorization_session_stores_nothing(site: Site) -> None:
    """The emulator's clock passes the 10-minute session before Alice consents: AgentCore's callback refuses."""
    alice = site.person(site.alice)
    sign_in(site, alice)
    ask(alice, "show my notes")
    button = authorize_button(alice)
    site.stack.emulator.advance_clock(SESSION_TTL_S + 1)
    button.click()
    consent(alice)
    expect(alice.page.get_by_text("This authorization session has expired.")).to_be_visible()
    alice.shot("expired-at-callback")
    assert site.vault() == {} and site.completions() == 0

    # Asking again gives a new, working link.
    alice.page.goto(site.url + "/")
    authorize_button(alice).click()
    # The provider remembers her earlier consent and may skip its page.
    allow, done = alice.page.get_by_role("button", name="Allow"), alice.page.get_by_role("heading", name="Authorization complete")
    expect(allow.or_(done)).to_be_visible()
    if allow.is_visible():
        allow.click()
    expect(done).to_be_visible()
    assert len(site.vault()) == 1


def test_a_session_that_expires_between_callback_and_binding_is_refused_as_expired(site: Site) -> None:
    """Held at the last redirect (a scripted browser can pause where a real one cannot), the session
    passes its 10 minutes; the binding service's completion is refused and says so."""
    alice = ScriptedPerson(site.alice.username, site.alice.password)
    try:
        alice.open_agent(site.url)
        start = event(alice.chat(site.url, "show my notes"), "authorization_required")["start_url"]
        login = alice.follow(site.url + start)
        prompt = alice.sign_in_through(login)
        held = alice.submit(prompt, button="Allow", stop_before=site.url + "/oauth2/session-binding")
        assert held.status_code == 302 and held.url.host == "127.0.0.1"
        site.stack.emulator.advance_clock(SESSION_TTL_S + 1)
        page = alice.follow(held.headers["location"])
        assert page.status_code == 410
        assert pages.AGENTCORE_REFUSED.title in page.text
    finally:
        alice.close()
    assert site.vault() == {}
