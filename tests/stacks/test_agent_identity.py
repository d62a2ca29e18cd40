"""Agent identity stack: workload identity, a credential provider per provider, callback registration."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
from aws_cdk.assertions import Match

from tests.stacks.conftest import IDP_PROVIDER, Synth, one, providers, render, resources, synth


def test_workload_identity_allows_exactly_the_session_binding_url(demo: Synth) -> None:
    demo.template("agent_identity").has_resource_properties(
        "AWS::BedrockAgentCore::WorkloadIdentity",
        {"Name": "agentcore-ecs-sandbox-agent", "AllowedResourceOauth2ReturnUrls": ["https://agent.example.com/oauth2/session-binding"]},
    )


def test_each_demo_provider_is_custom_oidc_with_its_own_client_and_external_secret(demo: Synth) -> None:
    template = demo.raw("agent_identity")
    assert len(resources(template, "AWS::BedrockAgentCore::OAuth2CredentialProvider")) == 2
    seen = set()
    for name in ("notes", "tasks"):
        provider = one(template, "AWS::BedrockAgentCore::OAuth2CredentialProvider", f"CredentialProvider{name.title()}")["Properties"]
        assert provider["Name"] == f"agentcore-ecs-sandbox-{name}"
        assert provider["CredentialProviderVendor"] == "CustomOauth2"
        config = render(provider["Oauth2ProviderConfigInput"]["CustomOauth2ProviderConfig"])
        assert config["ClientSecretSource"] == "EXTERNAL"
        assert config["ClientSecretConfig"]["JsonKey"] == "client_secret"
        secret, client = config["ClientSecretConfig"]["SecretId"], config["ClientId"]
        assert secret.startswith("${Import:") and f"AgentCoreClient{name.title()}ClientSecret" in secret
        assert client.startswith("${Import:") and f"AgentCoreClient{name.title()}" in client
        # One authorization server for both: the same discovery URL.
        assert config["OauthDiscovery"]["DiscoveryUrl"].endswith("/.well-known/openid-configuration")
        seen.add(config["OauthDiscovery"]["DiscoveryUrl"])
        assert "ClientSecret" not in config  # never the value itself
    assert len(seen) == 1


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
    assert outputs["CallbackUrlGithub"]["Description"] == "GitHub (github, github): register this redirect URI in your github OAuth app"


def test_microsoft_and_custom_oidc_vendors() -> None:
    ms = synth(
        providers(
            {
                "name": "m365",
                "kind": "microsoft",
                "display_name": "Microsoft 365",
                "client_id": "abc",
                "client_secret_name": "ms",
                "microsoft_tenant_id": "contoso.onmicrosoft.com",
            }
        )
    )
    ms.template("agent_identity").has_resource_properties(
        "AWS::BedrockAgentCore::OAuth2CredentialProvider",
        {
            "CredentialProviderVendor": "MicrosoftOauth2",
            "Oauth2ProviderConfigInput": {"MicrosoftOauth2ProviderConfig": Match.object_like({"TenantId": "contoso.onmicrosoft.com"})},
        },
    )
    custom = synth(providers({**IDP_PROVIDER, "client_id": "abc", "client_secret_name": "okta"}))
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


def _registration_parameters(template: dict[str, Any], name: str) -> tuple[dict[str, Any], list[Any]]:
    """The UpdateUserPoolClient parameters for provider `name`'s client, each CloudFormation token replaced by `TOKEN<n>`."""
    create = one(template, "Custom::AWS", f"DemoCallbackRegistration{name.title()}")["Properties"]["Create"]
    tokens: list[Any] = []
    text = ""
    for part in create["Fn::Join"][1]:
        if isinstance(part, str):
            text += part
        else:
            text += f"TOKEN<{len(tokens)}>"
            tokens.append(part)
    return json.loads(text)["parameters"], tokens


def _token(tokens: list[Any], marker: str) -> Any:
    return tokens[int(re.fullmatch(r"TOKEN<(\d+)>", marker).group(1))]  # type: ignore[union-attr]


def test_callback_registration_sets_agentcores_callback_and_keeps_every_other_setting(demo: Synth) -> None:
    params, tokens = _registration_parameters(demo.raw("agent_identity"), "notes")
    [marker] = params["CallbackURLs"]
    callback = _token(tokens, marker)
    assert callback["Fn::GetAtt"][1] == "CallbackUrl"
    assert callback["Fn::GetAtt"][0].startswith("CredentialProviderNotes")

    # UpdateUserPoolClient resets whatever it is not given: the registration sends every setting, and the
    # client's template holds none (tests/stacks/test_callback_registration.py).
    assert {k: v for k, v in params.items() if k not in ("UserPoolId", "ClientId", "CallbackURLs", "AllowedOAuthScopes")} == {
        "ClientName": "agentcore-identity-notes",
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
    # Only the provider's own scopes, each named through the resource server (a new one re-registers the client).
    scopes = [s.split(">")[-1] for s in params["AllowedOAuthScopes"]]
    assert scopes == ["/profile.read", "/notes.read", "/notes.write"]


def test_each_demo_client_is_registered_with_its_own_callback_and_scopes(demo: Synth) -> None:
    template = demo.raw("agent_identity")
    notes, notes_tokens = _registration_parameters(template, "notes")
    tasks, tasks_tokens = _registration_parameters(template, "tasks")
    assert _token(notes_tokens, notes["CallbackURLs"][0])["Fn::GetAtt"][0].startswith("CredentialProviderNotes")
    assert _token(tasks_tokens, tasks["CallbackURLs"][0])["Fn::GetAtt"][0].startswith("CredentialProviderTasks")
    assert "AgentCoreClientNotes" in str(_token(notes_tokens, notes["ClientId"]))
    assert "AgentCoreClientTasks" in str(_token(tasks_tokens, tasks["ClientId"]))
    assert [s.split(">")[-1] for s in tasks["AllowedOAuthScopes"]] == ["/tasks.read", "/tasks.write"]
    assert tasks["ClientName"] == "agentcore-identity-tasks"
    # One after the other (UpdateUserPoolClient is rate-limited), sharing the one provider function's log group.
    [tasks_id] = [k for k in resources(template, "Custom::AWS") if k.startswith("DemoCallbackRegistrationTasks")]
    [notes_id] = [k for k in resources(template, "Custom::AWS") if k.startswith("DemoCallbackRegistrationNotes")]
    assert notes_id in template["Resources"][tasks_id]["DependsOn"]
    assert len(resources(template, "AWS::Logs::LogGroup")) == 1


def test_callback_registration_may_only_update_that_user_pool(demo: Synth) -> None:
    for name in ("Notes", "Tasks"):
        policy = one(demo.raw("agent_identity"), "AWS::IAM::Policy", f"DemoCallbackRegistration{name}CustomResourcePolicy")
        [statement] = [render(s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
        assert statement["Action"] == "cognito-idp:UpdateUserPoolClient"
        assert statement["Resource"].startswith("${Import:") and "DemoAuthorizationServerPool" in statement["Resource"]


def test_each_providers_callback_url_and_credential_provider_are_outputs(demo: Synth) -> None:
    template = demo.raw("agent_identity")
    outputs = template["Outputs"]
    for name, display in (("Notes", "Demo Notes"), ("Tasks", "Demo Tasks")):
        [provider_id] = [
            k for k in resources(template, "AWS::BedrockAgentCore::OAuth2CredentialProvider") if k.startswith(f"CredentialProvider{name}")
        ]
        assert render(outputs[f"CallbackUrl{name}"]["Value"]) == "${" + provider_id + ".CallbackUrl}"
        assert outputs[f"CallbackUrl{name}"]["Description"].startswith(
            f"{display} ({name.lower()}, demo): AgentCore's callback URL, registered"
        )
        assert outputs[f"CredentialProviderName{name}"]["Value"] == f"agentcore-ecs-sandbox-{name.lower()}"
    assert set(outputs) == {
        "CallbackUrlNotes",
        "CallbackUrlTasks",
        "CredentialProviderNameNotes",
        "CredentialProviderNameTasks",
        "SessionBindingUrl",
    }
    assert outputs["SessionBindingUrl"]["Value"] == "https://agent.example.com/oauth2/session-binding"
