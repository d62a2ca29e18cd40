"""The 3-legged flow in a real browser, through every local stand-in and the unchanged services."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from local.demo.providers import CLIENT_SECRET_JSON_KEY
from local.demo.stack import PROVIDER_NAME, SCOPES, WORKLOAD_NAME
from tests.e2e.conftest import Site, ask, assistant_says, authorize_button, consent, sign_in

VAULT_KEY = f"{WORKLOAD_NAME}|{{sub}}|{PROVIDER_NAME}|{' '.join(sorted(SCOPES.split()))}"


def test_alice_signs_in_consents_and_sees_her_notes(site: Site) -> None:
    alice = site.person(site.alice)
    page = alice.page
    sign_in(site, alice, shot=True)
    alice.shot("agent")

    ask(alice, "show my notes")
    authorize = authorize_button(alice)
    alice.shot("authorize-button", docs="consent-card")
    assert site.vault() == {}

    # The start link, then the notes API's sign-in and consent pages, then AgentCore's callback,
    # then the session binding service: all followed by the browser itself.
    with page.expect_request(lambda r: r.url.startswith(site.stack.consent_issuer + "/oauth2/authorize?")) as authorization:
        authorize.click()
    query = parse_qs(urlsplit(authorization.value.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == [site.stack.callback_url]
    consent(alice, shot=True)
    expect(page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    assert urlsplit(page.url).path == "/oauth2/session-binding"
    alice.shot("binding-success", docs="authorization-complete")
    assert site.completions() == 1
    assert list(site.vault()) == [VAULT_KEY.format(sub=site.alice.sign_in_sub)], "one grant, for Alice (her sign-in sub)"

    # Back at the agent, the waiting request runs on its own: the vault now has her token.
    page.get_by_role("link", name="Return to the agent").click()
    expect(page.get_by_text("Continuing where you left off…")).to_be_visible()
    assistant_says(alice, "You have no notes yet")
    ask(alice, "add a note: water the plants")
    assistant_says(alice, "Added your note: water the plants")
    ask(alice, "show my notes")
    assistant_says(alice, "- water the plants")
    alice.shot("notes", docs="chat")
    assert page.get_by_role("button", name="Authorize Demo Notes").count() == 0
    assert site.completions() == 1, "no second consent"
    alice.watch.assert_clean()


def test_each_person_consents_for_themselves_and_sees_only_their_notes(site: Site) -> None:
    alice, bob = site.person(site.alice), site.person(site.bob)
    for person, note in ((alice, "alice's secret plan"), (bob, "bob's shopping list")):
        sign_in(site, person)
        ask(person, f"add a note: {note}")
        authorize_button(person).click()
        consent(person)
        expect(person.page.get_by_role("heading", name="Authorization complete")).to_be_visible()
        person.page.get_by_role("link", name="Return to the agent").click()
        assistant_says(person, f"Added your note: {note}")

    ask(bob, "show my notes")
    assistant_says(bob, "- bob's shopping list")
    expect(bob.page.locator("#messages")).not_to_contain_text("alice's secret plan")
    bob.shot("own-notes-only")
    assert sorted(site.vault()) == sorted(VAULT_KEY.format(sub=p.sign_in_sub) for p in (site.alice, site.bob))
    assert site.completions() == 2
    for person in (alice, bob):
        person.watch.assert_clean()


def test_deny_at_the_provider_stores_nothing_and_the_chat_says_so_with_try_again(site: Site) -> None:
    alice = site.person(site.alice)
    page = alice.page
    sign_in(site, alice)
    ask(alice, "who am I")
    expect(page.get_by_text("get_profile is waiting for your permission")).to_be_visible()
    authorize_button(alice).click()
    consent(alice, allow=False)
    # AgentCore's callback gets error=access_denied and shows its own page, with a way back; nothing
    # reaches the session binding service.
    expect(page.get_by_role("heading", name="Authorization not completed")).to_be_visible()
    expect(page.get_by_text("access_denied")).to_be_visible()
    alice.shot("denied")
    assert site.vault() == {}
    assert site.completions() == 0

    # Back at the agent, the waiting request runs again and learns how that consent ended: no new prompt.
    page.get_by_role("link", name="Return to the application").click()
    card = page.get_by_role("region", name="Permission not given")
    expect(card).to_contain_text(
        "The agent did not get permission to use Demo Notes: it was declined or could not be completed. Nothing was shared."
    )
    assert page.get_by_role("button", name="Authorize Demo Notes").count() == 0, "no silent loop back to the consent card"
    alice.shot("declined", docs="declined")

    # Try again: a fresh consent, approved this time (already signed in at the provider: straight to its page).
    card.get_by_role("button", name="Try again").click()
    authorize_button(alice).click()
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    page.get_by_role("link", name="Return to the agent").click()
    assistant_says(alice, f"You are {site.alice.username} at the demo API")
    assert site.completions() == 1


def test_cancel_after_a_declined_consent_asks_nothing_more(site: Site) -> None:
    alice = site.person(site.alice)
    page = alice.page
    sign_in(site, alice)
    ask(alice, "show my notes")
    authorize_button(alice).click()
    consent(alice, allow=False)
    page.get_by_role("link", name="Return to the application").click()
    card = page.get_by_role("region", name="Permission not given")
    card.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text("Cancelled. Nothing was shared with Demo Notes.")).to_be_visible()
    expect(card.get_by_role("button", name="Try again")).to_be_disabled()
    page.reload()  # nothing is waiting any more: no request runs again, no card comes back
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    assert page.get_by_role("region", name="Permission not given").count() == 0
    assert page.get_by_role("button", name="Authorize Demo Notes").count() == 0
    assert site.vault() == {} and site.completions() == 0


def test_the_provider_is_deployed_the_stacks_way_external_secret_and_basic_auth(site: Site) -> None:
    """As the AgentIdentity stack deploys it: the client secret in a Secrets Manager secret of ours
    (EXTERNAL, by ARN and JSON key), the client authenticated with HTTP Basic at the token endpoint."""
    stack = site.stack
    provider = stack.agentcore_control().get_oauth2_credential_provider(name=PROVIDER_NAME)
    assert provider["clientSecretSource"] == "EXTERNAL"
    assert provider["clientSecretArn"]["secretArn"] == stack.client_secret_arn
    assert provider["clientSecretJsonKey"] == CLIENT_SECRET_JSON_KEY
    config = provider["oauth2ProviderConfigOutput"]["customOauth2ProviderConfig"]
    assert config["clientAuthenticationMethod"] == "CLIENT_SECRET_BASIC"
    stored = stack.secrets_manager.client().get_secret_value(SecretId=stack.client_secret_arn)
    assert stored["ARN"] == stack.client_secret_arn and set(json.loads(stored["SecretString"])) == {CLIENT_SECRET_JSON_KEY}

    alice = site.person(site.alice)
    sign_in(site, alice)
    ask(alice, "show my notes")
    authorize_button(alice).click()
    consent(alice)  # the consent issuer accepts only client_secret_basic: a secret in the form would fail here
    expect(alice.page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    assert site.completions() == 1
    assert site.token_requests() == {(PROVIDER_NAME, "client_secret_basic"): 1}, "one code exchange, with Basic"
