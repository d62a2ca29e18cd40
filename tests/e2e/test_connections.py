"""Connected accounts in a real browser, through every local stand-in: two providers of the demo
authorization server (Demo Notes, Demo Tasks), the /connections page, and a disconnect after which the
agent asks again before it uses that account (the emulator's vault still holds the old grant)."""

from __future__ import annotations

from playwright.sync_api import expect

from local.demo.stack import PROVIDERS, WORKLOAD_NAME
from tests.e2e.conftest import Person, Site, allow, ask, assistant_says, authorize, sign_in

NOTES, TASKS = PROVIDERS


def _open_connections(site: Site, person: Person) -> None:
    person.page.goto(site.url + "/connections", wait_until="load")
    expect(person.page.get_by_role("heading", name="Demo Notes")).to_be_visible()


def _vault_providers(site: Site, user_sub: str) -> list[str]:
    return sorted(key.split("|")[2] for key in site.vault() if key.startswith(f"{WORKLOAD_NAME}|{user_sub}|"))


def test_alice_connects_two_accounts_disconnects_one_and_the_agent_asks_again(site: Site) -> None:
    alice = site.person(site.alice)
    page = alice.page
    sign_in(site, alice)

    ask(alice, "show my notes")
    authorize(alice, "Demo Notes")
    allow(alice)
    assistant_says(alice, "You have no notes yet")
    ask(alice, "add a task: call the bank")
    authorize(alice, "Demo Tasks")
    allow(alice)
    assistant_says(alice, "Added to your task list: call the bank")
    assert _vault_providers(site, site.alice.sign_in_sub) == sorted([NOTES.credential_provider, TASKS.credential_provider])

    _open_connections(site, alice)
    for name in ("Demo Notes", "Demo Tasks"):
        card = page.get_by_role("region", name=name)
        expect(card).to_contain_text("Status: Connected")
    expect(page.get_by_role("region", name="Demo Tasks").get_by_text("Add and complete tasks")).to_be_visible()
    alice.shot("connections", docs="connections")

    notes = page.get_by_role("region", name="Demo Notes")
    notes.get_by_role("button", name="Disconnect").click()
    notes.get_by_role("button", name="Disconnect").last.click()  # the confirmation's own button
    expect(page.get_by_role("status")).to_contain_text("Disconnected")
    expect(notes).to_contain_text("Status: Disconnected")
    expect(page.get_by_role("region", name="Demo Tasks")).to_contain_text("Status: Connected")
    # The vault keeps the grant (the demo server offers no token-only revocation): the registry is what stops its use.
    assert NOTES.credential_provider in _vault_providers(site, site.alice.sign_in_sub)

    page.get_by_role("link", name="Chat").click()
    ask(alice, "show my tasks")
    assistant_says(alice, "call the bank")  # the other account is untouched
    ask(alice, "show my notes")
    authorize(alice, "Demo Notes")  # asked again before the account is used
    # The demo server remembers that Alice approved this app (as GitHub does): no consent page this time,
    # straight back through AgentCore's callback to the session binding service.
    expect(page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    page.get_by_role("link", name="Return to the agent").click()
    assistant_says(alice, "You have no notes yet")
    _open_connections(site, alice)
    expect(page.get_by_role("region", name="Demo Notes")).to_contain_text("Status: Connected")
    alice.watch.assert_clean()


def test_bob_sees_none_of_alices_connected_accounts(site: Site) -> None:
    alice, bob = site.person(site.alice), site.person(site.bob)
    sign_in(site, alice)
    ask(alice, "show my notes")
    authorize(alice, "Demo Notes")
    allow(alice)
    assistant_says(alice, "You have no notes yet")

    sign_in(site, bob)
    _open_connections(site, bob)
    for name in ("Demo Notes", "Demo Tasks"):
        expect(bob.page.get_by_role("region", name=name)).to_contain_text("Status: Not connected")
    assert _vault_providers(site, site.bob.sign_in_sub) == []
    bob.watch.assert_clean()
