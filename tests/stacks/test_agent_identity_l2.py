"""The workload identity and the credential providers are aws-cdk-lib's stable L2 constructs, at stable logical ids
(the workload identity's since it was an L1; each credential provider's made of its provider's name: a new id would
replace the resource and, with it, AgentCore's callback URL); and the two reasons the
L2 is used only in part still hold: its vendor factories cannot reference an EXTERNAL secret, and its `grant_use`
bundles token reads with consent completion (stacks/constructs/agent_identity.py)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_bedrockagentcore as agentcore, aws_iam as iam
from aws_cdk.assertions import Template

from tests.stacks.conftest import GITHUB, PROD, THREE, Synth, as_list, providers, render, resources, synth

# Logical ids of the stateful AgentCore resources: these must never change. A credential provider's is
# `CredentialProvider<Name>` and a hash of that construct path, so the same provider name keeps it in every shape.
WORKLOAD_IDENTITY_ID = "WorkloadIdentityC18104DE"
CREDENTIAL_PROVIDER_IDS = {
    "notes": "CredentialProviderNotesE2E8F0F4",
    "tasks": "CredentialProviderTasks93FE2A1E",
    "github": "CredentialProviderGithub84212E66",
    "idp": "CredentialProviderIdpA49D33B4",
}
VENDORS = {
    "google": ("GoogleOauth2", "GoogleOauth2ProviderConfig", {}),
    "slack": ("SlackOauth2", "SlackOauth2ProviderConfig", {}),
    "microsoft": ("MicrosoftOauth2", "MicrosoftOauth2ProviderConfig", {}),
    "microsoft-tenant": ("MicrosoftOauth2", "MicrosoftOauth2ProviderConfig", {"microsoft_tenant_id": "contoso.onmicrosoft.com"}),
}


@pytest.mark.parametrize(
    ("overrides", "names"),
    [((), ["notes", "tasks"]), (PROD, ["notes", "tasks"]), (GITHUB, ["github"]), (THREE, ["notes", "github", "idp"])],
    ids=["demo", "prod", "github", "three"],
)
def test_l2_constructs_keep_the_logical_ids(overrides: tuple[tuple[str, str], ...], names: list[str]) -> None:
    built = synth(overrides)
    stack = built.stacks.agent_identity
    assert isinstance(stack.workload_identity, agentcore.WorkloadIdentity)
    assert list(stack.credential_providers) == names
    assert all(isinstance(p, agentcore.OAuth2CredentialProvider) for p in stack.credential_providers.values())
    template = built.raw("agent_identity")
    assert list(resources(template, "AWS::BedrockAgentCore::WorkloadIdentity")) == [WORKLOAD_IDENTITY_ID]
    assert list(resources(template, "AWS::BedrockAgentCore::OAuth2CredentialProvider")) == [CREDENTIAL_PROVIDER_IDS[n] for n in names]


def test_the_callback_urls_are_the_providers_attributes(demo: Synth) -> None:
    outputs = demo.raw("agent_identity")["Outputs"]
    assert render(outputs["CallbackUrlNotes"]["Value"]) == "${CredentialProviderNotesE2E8F0F4.CallbackUrl}"
    assert render(outputs["CallbackUrlTasks"]["Value"]) == "${CredentialProviderTasks93FE2A1E.CallbackUrl}"


@pytest.mark.parametrize("kind", list(VENDORS))
def test_every_vendor_references_an_external_secret(kind: str) -> None:
    vendor, block, extra = VENDORS[kind]
    provider = kind.partition("-")[0]
    entry = {"name": "p", "kind": provider, "display_name": "P", "client_id": "abc", "client_secret_name": f"agent/{provider}", **extra}
    built = synth(providers(entry))
    [properties] = [
        r["Properties"] for r in resources(built.raw("agent_identity"), "AWS::BedrockAgentCore::OAuth2CredentialProvider").values()
    ]
    assert properties["CredentialProviderVendor"] == vendor
    assert list(properties["Oauth2ProviderConfigInput"]) == [block]
    config = properties["Oauth2ProviderConfigInput"][block]
    assert config == {
        "ClientId": "abc",
        "ClientSecretSource": "EXTERNAL",
        "ClientSecretConfig": {"SecretId": f"agent/{provider}", "JsonKey": "client_secret"},
        **({"TenantId": "contoso.onmicrosoft.com"} if extra else {}),
    }


def _scratch() -> cdk.Stack:
    return cdk.Stack(cdk.App(), "Scratch", env=cdk.Environment(account="111122223333", region="eu-west-1"))


def test_the_l2_vendor_factories_cannot_reference_an_external_secret() -> None:
    """If this fails, aws-cdk-lib's factories learned EXTERNAL secrets: consider `using_*` instead of the L1 blocks."""
    stack = _scratch()
    agentcore.OAuth2CredentialProvider.using_github(
        stack,
        "Gh",
        o_auth2_credential_provider_name="gh",
        client_id="abc",
        client_secret=cdk.SecretValue.unsafe_plain_text("plaintext-in-template"),
    )
    [properties] = [r["Properties"] for r in resources(_template(stack), "AWS::BedrockAgentCore::OAuth2CredentialProvider").values()]
    config = properties["Oauth2ProviderConfigInput"]["GithubOauth2ProviderConfig"]
    assert config == {"ClientId": "abc", "ClientSecret": "plaintext-in-template"}  # the value in the template, no ClientSecretSource


def test_the_l2_grant_use_bundles_token_reads_with_consent_completion() -> None:
    """Why the service roles get hand-written statements (tests/stacks/test_iam_separation.py holds them apart)."""
    stack, C = _scratch(), agentcore.CfnOAuth2CredentialProvider
    provider = agentcore.OAuth2CredentialProvider(
        stack,
        "Provider",
        o_auth2_credential_provider_name="p",
        credential_provider_vendor=agentcore.OAuth2CredentialProviderVendor.GITHUB.value,
        oauth2_provider_config_input=C.Oauth2ProviderConfigInputProperty(
            github_oauth2_provider_config=C.GithubOauth2ProviderConfigInputProperty(
                client_id="abc",
                client_secret_source="EXTERNAL",  # noqa: S106 - where the secret lives, not a secret
                client_secret_config=C.SecretReferenceProperty(secret_id="agent/github", json_key="client_secret"),  # noqa: S106 - a name
            )
        ),
    )
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
    provider.grant_use(role)
    [policy] = resources(_template(stack), "AWS::IAM::Policy").values()
    granted = [render(s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    agentcore_statements = [s for s in granted if any(a.startswith("bedrock-agentcore:") for a in as_list(s["Action"]))]
    actions = {a for s in agentcore_statements for a in as_list(s["Action"])}
    assert {"bedrock-agentcore:GetResourceOauth2Token", "bedrock-agentcore:CompleteResourceTokenAuth"} <= actions
    assert any(r.endswith("/workload-identity/*") for s in agentcore_statements for r in as_list(s["Resource"]))


def _template(stack: cdk.Stack) -> dict[str, Any]:
    return dict(Template.from_stack(stack).to_json())
