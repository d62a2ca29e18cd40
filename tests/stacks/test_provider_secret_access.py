"""How AgentCore reads each provider's EXTERNAL client secret, as deployed (docs/deploy.md, "How AgentCore
reads the client secret"): with the credentials of the role that calls GetResourceOauth2Token or
CompleteResourceTokenAuth. Each task role may read exactly the configured providers' secrets, only through an
AWS service, and decrypt only through Secrets Manager; no secret resource policy or key policy names a service
principal.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.stacks.conftest import THREE, Synth, as_list, one, render, resources, statements, synth

SERVICES = ("Agent", "SessionBinding")
SECRET_ARN_PREFIX = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
VIA_SECRETS_MANAGER = {"StringEquals": {"kms:ViaService": "secretsmanager.${AWS::Region}.amazonaws.com"}}


def _task_statements(synth_: Synth, service: str) -> list[dict[str, Any]]:
    return [render(s) for s in statements(one(synth_.raw("services"), "AWS::IAM::ManagedPolicy", f"{service}TaskPolicy"))]


def _with_action(stmts: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in stmts if action in as_list(s["Action"])]


def _provider_secret_references(synth_: Synth) -> list[dict[str, Any]]:
    """Each credential provider's ClientSecretConfig, in the template's order."""
    found = []
    for provider in resources(synth_.raw("agent_identity"), "AWS::BedrockAgentCore::OAuth2CredentialProvider").values():
        [config] = provider["Properties"]["Oauth2ProviderConfigInput"].values()
        assert config["ClientSecretSource"] == "EXTERNAL"
        assert "ClientSecret" not in config  # the value never enters the template
        found.append(dict(render(config["ClientSecretConfig"])))
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_each_caller_reads_exactly_the_demo_secrets_only_through_an_aws_service(demo: Synth, service: str) -> None:
    stmts = _task_statements(demo, service)
    [read] = _with_action(stmts, "secretsmanager:GetSecretValue")
    assert read["Effect"] == "Allow"
    assert as_list(read["Action"]) == ["secretsmanager:GetSecretValue"]  # no DescribeSecret, no writes
    notes, tasks = as_list(read["Resource"])  # the identity stack's secret of each demo client, by exact ARN
    assert notes.startswith("${Import:") and "AgentCoreClientNotesClientSecret" in notes
    assert tasks.startswith("${Import:") and "AgentCoreClientTasksClientSecret" in tasks
    assert read["Condition"] == {"Bool": {"aws:ViaAWSService": "true"}}


@pytest.mark.parametrize("service", SERVICES)
def test_each_caller_decrypts_the_secrets_key_only_through_secrets_manager(demo: Synth, service: str) -> None:
    on_secrets_key = [s for s in _task_statements(demo, service) if any("SecretsKey" in str(r) for r in as_list(s["Resource"]))]
    assert on_secrets_key  # (the binding's ledger key is a separate key, tested in test_binding_ledger.py)
    for decrypt in on_secrets_key:
        assert as_list(decrypt["Action"]) == ["kms:Decrypt"]
        [key] = as_list(decrypt["Resource"])
        assert key.startswith("${Import:")
        assert decrypt["Condition"] == VIA_SECRETS_MANAGER


@pytest.mark.parametrize("shape", [(), THREE], ids=["demo", "three"])
def test_the_providers_reference_the_secrets_the_callers_may_read(shape: tuple[tuple[str, str], ...]) -> None:
    built = synth(shape)
    references = _provider_secret_references(built)
    for svc in SERVICES:
        [read] = _with_action(_task_statements(built, svc), "secretsmanager:GetSecretValue")
        granted = as_list(read["Resource"])
        # A secret known by name is granted with the suffix Secrets Manager appends; one made here by its ARN.
        expected = [r["SecretId"] if r["SecretId"].startswith("${") else f"{SECRET_ARN_PREFIX}{r['SecretId']}-??????" for r in references]
        assert granted == expected
    assert all(r["JsonKey"] == "client_secret" for r in references)


def test_a_named_vendor_secret_is_referenced_by_name_and_granted_by_that_name(github: Synth) -> None:
    assert [r["SecretId"] for r in _provider_secret_references(github)] == ["agent/github-oauth"]
    for service in SERVICES:
        [read] = _with_action(_task_statements(github, service), "secretsmanager:GetSecretValue")
        assert as_list(read["Resource"]) == [
            "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:agent/github-oauth-??????"
        ]
        assert read["Condition"] == {"Bool": {"aws:ViaAWSService": "true"}}


def test_the_demo_secrets_are_under_the_secrets_key_with_no_resource_policy(demo: Synth) -> None:
    identity = demo.raw("identity")
    secrets = [s for name, s in resources(identity, "AWS::SecretsManager::Secret").items() if "ClientSecret" in name]
    assert len(secrets) == 2  # one per demo provider's client
    for secret in secrets:
        assert "SecretsKey" in secret["Properties"]["KmsKeyId"]["Fn::GetAtt"][0]
    # Same account, caller's credentials: IAM on the caller suffices; no resource policy widens who may read.
    assert resources(identity, "AWS::SecretsManager::ResourcePolicy") == {}


def test_the_secrets_key_policy_delegates_to_iam_and_names_no_service(demo: Synth) -> None:
    [key] = [k for name, k in resources(demo.raw("identity"), "AWS::KMS::Key").items() if "SecretsKey" in name]
    # CDK's default root statement, plus the account's use through Secrets Manager that `Secret` adds:
    # every statement names the account (so IAM policies on the callers decide), none a service.
    stmts = [render(s) for s in key["Properties"]["KeyPolicy"]["Statement"]]
    assert {str(s["Principal"]) for s in stmts} == {str({"AWS": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"})}
    [via] = [s for s in stmts if "Condition" in s]
    assert via["Condition"] == VIA_SECRETS_MANAGER


def test_no_policy_anywhere_grants_the_agentcore_service_principal(demo: Synth) -> None:
    for stack in ("identity", "agent_identity", "services"):
        rendered = str(render(demo.raw(stack)))
        assert "bedrock-agentcore.amazonaws.com" not in rendered, stack
