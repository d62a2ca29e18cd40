"""Network and identity stacks: the properties that carry security or teardown weight."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

from cdk_app.config import DEMO_API_SCOPES
from tests.stacks.conftest import Synth, one, render, resources


def test_vpc_two_azs_public_and_private_subnets(demo: Synth) -> None:
    network = demo.raw("network")
    subnets = resources(network, "AWS::EC2::Subnet")
    assert len(subnets) == 4
    public = [s for k, s in subnets.items() if "public" in k]
    private = [s for k, s in subnets.items() if "private" in k]
    assert len(public) == 2 and len(private) == 2
    # Nothing launched anywhere gets a public IP.
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())
    azs = {json.dumps(s["Properties"]["AvailabilityZone"]) for s in subnets.values()}
    assert len(azs) == 2


def test_nat_gateway_count_follows_config(demo: Synth, prod: Synth) -> None:
    assert len(resources(demo.raw("network"), "AWS::EC2::NatGateway")) == 1
    assert len(resources(prod.raw("network"), "AWS::EC2::NatGateway")) == 2


def test_flow_logs_capture_all_traffic_to_an_encrypted_log_group(demo: Synth) -> None:
    template = demo.template("network")
    template.has_resource_properties(
        "AWS::EC2::FlowLog", {"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"}
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value(), "RetentionInDays": 30})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_default_security_group_is_closed(demo: Synth) -> None:
    # CDK's restrictDefaultSecurityGroup removes every rule of the VPC's default group on deploy.
    demo.template("network").resource_count_is("Custom::VpcRestrictDefaultSG", 1)


def test_log_key_only_serves_this_accounts_log_groups(demo: Synth) -> None:
    key = one(demo.raw("network"), "AWS::KMS::Key", "LogEncryption")
    logs_statements = [render(s) for s in key["Properties"]["KeyPolicy"]["Statement"] if "Service" in s.get("Principal", {})]
    assert len(logs_statements) == 1
    condition = logs_statements[0]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert condition == "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"


def test_sign_in_pool_has_strong_passwords_optional_mfa_and_no_self_sign_up(demo: Synth) -> None:
    demo.template("identity").has_resource_properties(
        "AWS::Cognito::UserPool",
        {
            "Policies": {
                "PasswordPolicy": {
                    "MinimumLength": 14,
                    "RequireLowercase": True,
                    "RequireUppercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": True,
                    "TemporaryPasswordValidityDays": 3,
                }
            },
            "MfaConfiguration": "OPTIONAL",
            "EnabledMfas": ["SOFTWARE_TOKEN_MFA"],
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
        },
    )


def test_alb_client_uses_code_flow_with_the_idpresponse_callback(demo: Synth) -> None:
    demo.template("identity").has_resource_properties(
        "AWS::Cognito::UserPoolClient",
        {
            "GenerateSecret": True,
            "AllowedOAuthFlows": ["code"],
            "AllowedOAuthFlowsUserPoolClient": True,
            "CallbackURLs": ["https://agent.example.com/oauth2/idpresponse"],
            "AllowedOAuthScopes": Match.array_with(["openid", "email"]),
            "SupportedIdentityProviders": ["COGNITO"],
            "PreventUserExistenceErrors": "ENABLED",
        },
    )


def test_both_pools_have_a_hosted_domain(demo: Synth) -> None:
    domains = resources(demo.raw("identity"), "AWS::Cognito::UserPoolDomain")
    assert len(domains) == 2
    rendered = sorted(render(d["Properties"]["Domain"]) for d in domains.values())
    assert rendered == [
        "agentcore-ecs-sandbox-${AWS::AccountId}-demo-as",
        "agentcore-ecs-sandbox-${AWS::AccountId}-signin",
    ]


def test_demo_authorization_server_has_resource_server_scopes(demo: Synth) -> None:
    """One resource server for every demo provider, with each custom scope and the words people read for it."""
    server = one(demo.raw("identity"), "AWS::Cognito::UserPoolResourceServer")["Properties"]
    assert server["Identifier"] == "demo-api"
    assert server["Scopes"] == [{"ScopeName": name, "ScopeDescription": words} for name, words in DEMO_API_SCOPES.items()]
    assert {s["ScopeName"] for s in server["Scopes"]} == {"profile.read", "notes.read", "notes.write", "tasks.read", "tasks.write"}


def test_each_demo_provider_has_its_own_client_fixed_only_by_identity(demo: Synth) -> None:
    # The clients' settings (code flow, their scopes, AgentCore's callback) are written by the agent identity
    # stack's registration (tests/stacks/test_agent_identity.py); the template fixes only who each client is.
    pool = "${" + next(k for k in resources(demo.raw("identity"), "AWS::Cognito::UserPool") if "DemoAuthorization" in k) + "}"
    for name in ("notes", "tasks"):
        client = one(demo.raw("identity"), "AWS::Cognito::UserPoolClient", f"AgentCoreClient{name.title()}")["Properties"]
        assert {**client, "UserPoolId": render(client["UserPoolId"])} == {
            "ClientName": f"agentcore-identity-{name}",
            "GenerateSecret": True,
            "UserPoolId": pool,
        }
    assert len(resources(demo.raw("identity"), "AWS::Cognito::UserPoolClient")) == 3  # and the ALB's


def test_demo_client_secrets_are_copied_by_reference_not_value(demo: Synth) -> None:
    identity = demo.raw("identity")
    secrets = resources(identity, "AWS::SecretsManager::Secret")
    for name in ("Notes", "Tasks"):
        [client_secret] = [v for k, v in secrets.items() if f"AgentCoreClient{name}ClientSecret" in k]
        value = client_secret["Properties"]["SecretString"]
        # A GetAtt of that provider's own client, resolved by CloudFormation at deploy time: never in the template.
        [copied] = [p for p in value["Fn::Join"][1] if isinstance(p, dict)]
        assert (
            copied["Fn::GetAtt"][0].startswith(f"DemoAuthorizationServerAgentCoreClient{name}")
            and copied["Fn::GetAtt"][1] == "ClientSecret"
        )
        assert client_secret["Properties"]["KmsKeyId"]
    # No custom resource reads the secret back (CDK's getter would add one).
    assert not resources(identity, "Custom::DescribeCognitoUserPoolClient")


def test_flow_signing_key_is_generated_json_with_a_key_id(demo: Synth) -> None:
    demo.template("identity").has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "GenerateSecretString": {
                "SecretStringTemplate": '{"kid": "k1"}',
                "GenerateStringKey": "key",
                "PasswordLength": 64,
                "ExcludePunctuation": True,
            },
            "KmsKeyId": Match.any_value(),
        },
    )


def test_no_vendor_pool_when_provider_is_not_demo(github: Synth) -> None:
    identity = github.raw("identity")
    assert len(resources(identity, "AWS::Cognito::UserPool")) == 1
    assert not resources(identity, "AWS::Cognito::UserPoolResourceServer")


def test_prod_pools_use_threat_protection(prod: Synth) -> None:
    prod.template("identity").has_resource_properties(
        "AWS::Cognito::UserPool",
        {"UserPoolTier": "PLUS", "UserPoolAddOns": {"AdvancedSecurityMode": "ENFORCED"}, "DeletionProtection": "ACTIVE"},
    )
