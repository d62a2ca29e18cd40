"""Network and identity stacks: the properties that carry security or teardown weight."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

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
    identity = demo.template("identity")
    identity.has_resource_properties(
        "AWS::Cognito::UserPoolResourceServer",
        {
            "Identifier": "demo-api",
            "Scopes": Match.array_with(
                [
                    {"ScopeName": "notes.read", "ScopeDescription": Match.any_value()},
                    {"ScopeName": "profile.read", "ScopeDescription": Match.any_value()},
                ]
            ),
        },
    )
    # The client's settings (code flow, these scopes, AgentCore's callback) are written by the agent identity
    # stack's registration (tests/stacks/test_agent_identity.py); the template fixes only who the client is.
    client = one(demo.raw("identity"), "AWS::Cognito::UserPoolClient", "AgentCoreClient")["Properties"]
    assert {**client, "UserPoolId": render(client["UserPoolId"])} == {
        "ClientName": "agentcore-identity",
        "GenerateSecret": True,
        "UserPoolId": "${" + next(k for k in resources(demo.raw("identity"), "AWS::Cognito::UserPool") if "DemoAuthorization" in k) + "}",
    }


def test_demo_client_secret_is_copied_by_reference_not_value(demo: Synth) -> None:
    identity = demo.raw("identity")
    secrets = resources(identity, "AWS::SecretsManager::Secret")
    client_secret = next(v for k, v in secrets.items() if "ClientSecret" in k)
    value = client_secret["Properties"]["SecretString"]
    # A GetAtt resolved by CloudFormation at deploy time: the value is never in the template.
    parts = value["Fn::Join"][1]
    assert any(isinstance(p, dict) and p.get("Fn::GetAtt", [None, None])[1] == "ClientSecret" for p in parts)
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
