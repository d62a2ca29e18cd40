"""Sign-out in a real browser: the header says who is signed in; Sign out ends the load balancer's session and
the sign-in provider's, so no API call works any more and another person can sign in in the same browser."""

from __future__ import annotations

from playwright.sync_api import expect

from local.idp import SIGN_IN_TITLE
from tests.e2e.conftest import Site, ask, fill_login, sign_in


def test_alice_signs_out_and_bob_signs_in_in_the_same_browser(site: Site) -> None:
    alice = site.person(site.alice)
    page = alice.page
    sign_in(site, alice)
    expect(page.get_by_text(f"Signed in as {site.alice.email}")).to_be_visible()
    ask(alice, "who am I")
    expect(page.get_by_role("button", name="Authorize Demo Notes")).to_be_visible()
    alice.shot("signed-in")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(site.url + "/signed-out")
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    alice.shot("signed-out", docs="signed-out")
    assert not [c for c in alice.context.cookies() if c["name"].startswith("AWSELBAuthSessionCookie")]
    assert page.request.get(site.url + "/api/session").status == 401, "no API call works after sign-out"

    # The sign-in provider's session ended too: it asks for a password again, and bob can give his.
    page.get_by_role("link", name="Sign in again").click()
    fill_login(page, site.bob, SIGN_IN_TITLE)
    page.wait_for_url(site.url + "/")
    expect(page.get_by_text(f"Signed in as {site.bob.email}")).to_be_visible()
    expect(page.locator("#messages")).not_to_contain_text("who am I")  # alice's conversation is gone from the tab
    ask(alice, "who am I")
    expect(page.get_by_role("button", name="Authorize Demo Notes")).to_be_visible()
    alice.shot("bob-signed-in")
    alice.watch.assert_clean()
