"""Agent identity stack: workload identity, credential provider, callback registration."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
from aws_cdk.assertions import Match

from tests.stacks.conftest import Synth, one, render, resources, synth


def test_workload_identity_allows_exactly_the_session_binding_url(demo: Synth) -> None:
    demo.template("agent_identity").has_resource_properties(
        "AWS::BedrockAgentCore::WorkloadIdentity",
        {"Name": "agentcore-ecs-sandbox-agent", "AllowedResourceOauth2ReturnUrls": ["https://agent.example.com/oauth2/session-binding"]},
    )


def test_demo_provider_is_custom_oidc_with_an_external_secret(demo: Synth) -> None:
    provider = one(demo.raw("agent_identity"), "AWS::BedrockAgentCore::OAuth2CredentialProvider")["Properties"]
    assert provider["CredentialProviderVendor"] == "CustomOauth2"
    config = render(provider["Oauth2ProviderConfigInput"]["CustomOauth2ProviderConfig"])
    assert config["ClientSecretSource"] == "EXTERNAL"
    assert config["ClientSecretConfig"]["JsonKey"] == "client_secret"
    assert config["ClientSecretConfig"]["SecretId"].startswith("${Import:")
    assert config["OauthDiscovery"]["DiscoveryUrl"].endswith("/.well-known/openid-configuration")
    assert "ClientSecret" not in config  # never the value itself


def test_github_provider_references_the_named_secret(github: Synth) -> None:
    github.template("agent_identity").has_resource_properties(
        "AWS::BedrockAgentCore::OAuth2CredentialProvider",
        {
            "CredentialProviderVendor": "GithubOauth2",
            "Name": "agentcore-ecs-sandbox-github",
            "Oauth2ProviderConfigInput": {
                "GithubOauth2ProviderConfig": {
                    "ClientId": "Iv1.0123456789abcdef",
                    "ClientSecretSource": "EXTERNAL",
                    "ClientSecretConfig": {"JsonKey": "client_secret", "SecretId": Match.any_value()},
                }
            },
        },
    )
    secret_id = render(
        one(github.raw("agent_identity"), "AWS::BedrockAgentCore::OAuth2CredentialProvider")["Properties"]["Oauth2ProviderConfigInput"][
            "GithubOauth2ProviderConfig"
        ]["ClientSecretConfig"]["SecretId"]
    )
    # By name: an ARN built from a name would lack the random suffix.
    assert secret_id == "agent/github-oauth"
    # No registration custom resource: the callback URL is an output for the person to paste.
    assert not resources(github.raw("agent_identity"), "Custom::AWS")
    outputs = github.raw("agent_identity")["Outputs"]
    assert "github" in outputs["ProviderCallbackUrl"]["Description"]


def test_microsoft_and_custom_oidc_vendors() -> None:
    ms = synth(
        (
            ("provider", "microsoft"),
            ("provider_client_id", "abc"),
            ("provider_client_secret_name", "ms"),
            ("microsoft_tenant_id", "contoso.onmicrosoft.com"),
        )
    )
    ms.template("agent_identity").has_resource_properties(
        "AWS::BedrockAgentCore::OAuth2CredentialProvider",
        {
            "CredentialProviderVendor": "MicrosoftOauth2",
            "Oauth2ProviderConfigInput": {"MicrosoftOauth2ProviderConfig": Match.object_like({"TenantId": "contoso.onmicrosoft.com"})},
        },
    )
    custom = synth(
        (
            ("provider", "custom-oidc"),
            ("provider_client_id", "abc"),
            ("provider_client_secret_name", "okta"),
            ("provider_discovery_url", "https://idp.example.org/.well-known/openid-configuration"),
        )
    )
    custom.template("agent_identity").has_resource_properties(
        "AWS::BedrockAgentCore::OAuth2CredentialProvider",
        {
            "CredentialProviderVendor": "CustomOauth2",
            "Oauth2ProviderConfigInput": {
                "CustomOauth2ProviderConfig": Match.object_like(
                    {"OauthDiscovery": {"DiscoveryUrl": "https://idp.example.org/.well-known/openid-configuration"}}
                )
            },
        },
    )


def _registration_parameters(template: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The UpdateUserPoolClient parameters, each CloudFormation token replaced by `TOKEN<n>`."""
    create = one(template, "Custom::AWS")["Properties"]["Create"]
    tokens: list[Any] = []
    text = ""
    for part in create["Fn::Join"][1]:
        if isinstance(part, str):
            text += part
        else:
            text += f"TOKEN<{len(tokens)}>"
            tokens.append(part)
    return json.loads(text)["parameters"], tokens


def test_callback_registration_sets_agentcores_callback_and_keeps_every_other_setting(demo: Synth) -> None:
    params, tokens = _registration_parameters(demo.raw("agent_identity"))
    [marker] = params["CallbackURLs"]
    callback = tokens[int(re.fullmatch(r"TOKEN<(\d+)>", marker).group(1))]  # type: ignore[union-attr]
    assert callback["Fn::GetAtt"][1] == "CallbackUrl"
    assert callback["Fn::GetAtt"][0].startswith("CredentialProvider")

    # UpdateUserPoolClient resets whatever it is not given: the registration sends every setting, and the
    # client's template holds none (tests/stacks/test_callback_registration.py).
    assert {k: v for k, v in params.items() if k not in ("UserPoolId", "ClientId", "CallbackURLs", "AllowedOAuthScopes")} == {
        "ClientName": "agentcore-identity",
        "AllowedOAuthFlows": ["code"],
        "AllowedOAuthFlowsUserPoolClient": True,
        "SupportedIdentityProviders": ["COGNITO"],
        "ExplicitAuthFlows": ["ALLOW_REFRESH_TOKEN_AUTH"],
        "PreventUserExistenceErrors": "ENABLED",
        "EnableTokenRevocation": True,
        "AccessTokenValidity": 60,
        "IdTokenValidity": 60,
        "RefreshTokenValidity": 43200,
        "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "minutes"},
    }
    botocore_shape = botocore.session.get_session().get_service_model("cognito-idp").operation_model("UpdateUserPoolClient").input_shape
    assert set(params) <= set(botocore_shape.members)
    assert set(botocore_shape.required_members) <= set(params)
    scopes = [s.split(">")[-1] for s in params["AllowedOAuthScopes"]]
    assert scopes == ["openid", "/notes.read", "/notes.write", "/profile.read"]


def test_callback_registration_may_only_update_that_user_pool(demo: Synth) -> None:
    policy = one(demo.raw("agent_identity"), "AWS::IAM::Policy", "CustomResourcePolicy")
    [statement] = [render(s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    assert statement["Action"] == "cognito-idp:UpdateUserPoolClient"
    assert statement["Resource"].startswith("${Import:")


def test_callback_url_is_an_output(demo: Synth) -> None:
    outputs = demo.raw("agent_identity")["Outputs"]
    assert (
        render(outputs["ProviderCallbackUrl"]["Value"])
        == "${"
        + next(k for k in resources(demo.raw("agent_identity"), "AWS::BedrockAgentCore::OAuth2CredentialProvider"))
        + ".CallbackUrl}"
    )
    assert outputs["SessionBindingUrl"]["Value"] == "https://agent.example.com/oauth2/session-binding"
