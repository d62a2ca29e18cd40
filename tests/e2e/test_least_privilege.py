"""Least privilege, checked offline: each service runs with its own keys, and the AgentCore Identity emulator
and the local DynamoDB allow only what that service's role allows as synthesized (`local/iam/`).

The whole flow passes with exactly the statements the stacks deploy, and uses every AgentCore, DynamoDB
and Secrets Manager action they grant; take one statement away and the flow stops with AWS's
AccessDeniedException at the call that needed it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from local.demo.stack import DemoStack
from local.iam.policy import Decision
from local.iam.principals import Principal, Principals
from local.iam.templates import UNRESOLVED
from tests.e2e.conftest import Site, allow, ask, assistant_says, authorize, authorize_button, consent, sign_in

# Actions of these services the templates grant and the flow below must use, on every resource the local stack
# has (not logs, not KMS keys of DynamoDB tables: the local DynamoDB has no encryption or log groups).
CHECKED_SERVICES = ("bedrock-agentcore:", "dynamodb:", "secretsmanager:", "kms:")
# Granted, and not used here: AWS does not document whose credentials AgentCore reads the client secret with
# when it exchanges the code (the emulator uses the session's initiator, the agent), so the binding role
# holds the read too (docs/deploy.md, "How AgentCore reads the client secret"; checked only in an account).
ASSUMED_UNUSED = {("session_binding", "secretsmanager:getsecretvalue"), ("session_binding", "kms:decrypt")}


def _without(action: str, service: str) -> Callable[[Principals], Principals]:
    """The principals with every statement of `service` that grants `action` taken away."""

    def adjust(principals: Principals) -> Principals:
        principal: Principal = principals[service]
        return principals.replaced(principal.without(lambda s: action.lower() not in {a.lower() for a in s.actions}))

    return adjust


@pytest.fixture
def stack(stack: DemoStack, request: pytest.FixtureRequest) -> DemoStack:
    """The shared stack of the default configuration (`tests/e2e/conftest.py`: this test's own principals, put back
    after it), with one statement taken away where the test says which (`request.param`)."""
    adjust = getattr(request, "param", None)
    if adjust is not None:
        assert stack.principals is not None, "the IAM check is on by default"
        stack.use_principals(adjust(stack.principals))
    return stack


def _principals(site: Site) -> Principals:
    assert site.stack.principals is not None, "the IAM check is on by default"
    return site.stack.principals


def _consent_and_show_notes(site: Site) -> None:
    alice = site.person(site.alice)
    sign_in(site, alice)
    ask(alice, "show my notes")
    with alice.page.expect_request(lambda r: "/oauth2/start" in r.url) as start:
        authorize_button(alice).click()
    consent(alice)
    expect(alice.page.get_by_role("heading", name="Authorization complete")).to_be_visible()
    landing = alice.page.url
    alice.page.goto(start.value.url)  # the start link again: the ledger is read and says it is done
    expect(alice.page.get_by_text("already complete")).to_be_visible()
    alice.page.goto(landing)
    alice.page.get_by_role("link", name="Return to the agent").click()
    assistant_says(alice, "You have no notes yet")
    ask(alice, "add a note: least privilege")
    assistant_says(alice, "Added your note: least privilege")
    # The second provider (its own credential provider and client secret), and the connected accounts page.
    ask(alice, "add a task: least privilege")
    authorize(alice, "Demo Tasks")
    allow(alice)
    assistant_says(alice, "Added to your task list: least privilege")
    alice.page.goto(site.url + "/connections")
    expect(alice.page.get_by_role("region", name="Demo Tasks")).to_contain_text("Status: Connected")


def test_the_flow_passes_with_the_synthesized_statements_and_uses_every_grant(site: Site) -> None:
    _consent_and_show_notes(site)
    principals = _principals(site)
    assert principals.denials() == []
    used = {(d.principal, d.action.lower(), d.resource) for d in principals.decided if d.decision is Decision.ALLOW}
    for service in ("agent", "session_binding", "demo_api"):
        statements = principals[service].statements or ()
        granted = {
            (service, a.lower(), r)
            for s in statements
            for a in s.actions
            for r in s.resources
            if a.lower().startswith(CHECKED_SERVICES) and not r.startswith(UNRESOLVED)
        }
        assert granted, service
        unused = {g for g in granted - used if g[:2] not in ASSUMED_UNUSED}
        assert not unused, f"{service} is granted what the whole flow never used: {sorted(unused)}"
    # Each service called as itself: the agent never completed a consent, the binding service never read a token.
    pairs = {(principal, action) for principal, action, _ in used}
    assert ("session_binding", "bedrock-agentcore:getresourceoauth2token") not in pairs
    assert ("agent", "bedrock-agentcore:completeresourcetokenauth") not in pairs


def _denied(site: Site, service: str, action: str) -> str:
    found = [d for d in _principals(site).denials() if d.principal == service and d.action.lower() == action.lower()]
    assert found, f"no AccessDenied for {service} {action}; denials: {_principals(site).denials()}"
    return found[0].resource


@pytest.mark.parametrize("stack", [_without("bedrock-agentcore:GetResourceOauth2Token", "agent")], indirect=True, ids=["agent"])
def test_without_the_token_read_the_agent_cannot_fetch_a_token(site: Site) -> None:
    alice = site.person(site.alice)
    sign_in(site, alice)
    ask(alice, "show my notes")
    expect(alice.page.locator("#messages")).to_contain_text("The agent could not get permission to act for you")
    assert _denied(site, "agent", "bedrock-agentcore:GetResourceOauth2Token").endswith(":workload-identity-directory/default")
    assert site.vault() == {}


@pytest.mark.parametrize(
    "stack", [_without("bedrock-agentcore:CompleteResourceTokenAuth", "session_binding")], indirect=True, ids=["binding"]
)
def test_without_complete_resource_token_auth_no_consent_is_stored(site: Site) -> None:
    alice = site.person(site.alice)
    sign_in(site, alice)
    ask(alice, "show my notes")
    authorize_button(alice).click()
    consent(alice)
    expect(alice.page.get_by_role("heading", name="Authorization complete")).not_to_be_visible()
    _denied(site, "session_binding", "bedrock-agentcore:CompleteResourceTokenAuth")
    assert site.vault() == {}


@pytest.mark.parametrize("stack", [_without("dynamodb:PutItem", "session_binding")], indirect=True, ids=["ledger"])
def test_without_the_ledger_statement_no_authorization_starts(site: Site) -> None:
    alice = site.person(site.alice)
    sign_in(site, alice)
    ask(alice, "show my notes")
    authorize_button(alice).click()
    expect(alice.page.get_by_role("button", name="Allow")).not_to_be_visible()
    assert _denied(site, "session_binding", "dynamodb:PutItem").endswith(":table/local-demo-binding-sessions")
    assert site.vault() == {}


@pytest.mark.parametrize(
    ("stack", "action"),
    [
        (_without("secretsmanager:GetSecretValue", "agent"), "secretsmanager:GetSecretValue"),
        (_without("kms:Decrypt", "agent"), "kms:Decrypt"),
    ],
    indirect=["stack"],
    ids=["secret", "key"],
)
def test_without_the_client_secret_or_its_key_the_code_exchange_fails(site: Site, action: str) -> None:
    alice = site.person(site.alice)
    sign_in(site, alice)
    ask(alice, "show my notes")
    authorize_button(alice).click()
    consent(alice)
    expect(alice.page.get_by_text("The code exchange at the authorization server failed")).to_be_visible()
    expected = site.stack.client_secret_arn if action.startswith("secretsmanager") else site.stack.secrets_manager.key_arn
    assert _denied(site, "agent", action) == expected
    assert site.vault() == {}
