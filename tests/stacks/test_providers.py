"""Several outbound providers in one deployment: the default two demo providers, and three of different kinds (a
demo provider, GitHub, a custom OIDC provider). Each gets its own credential provider, its own exact IAM
resources, its own outputs, and its entry in the agent's `PROVIDERS`, which parses once CloudFormation has
joined the demo API's URL (and the ARN parts of a client secret read for revocation) into it. With
`revoke_on_disconnect` on, an entry says how to revoke and the agent's role gains exactly one statement."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.stacks.conftest import IDP_REVOCATION_URL, Synth, as_list, one, render, resources, statements

AGENTCORE = "arn:${AWS::Partition}:bedrock-agentcore:${AWS::Region}:${AWS::AccountId}"
DIRECTORY = f"{AGENTCORE}:workload-identity-directory/default"
WORKLOAD = f"{DIRECTORY}/workload-identity/agentcore-ecs-sandbox-agent"
VAULT = f"{AGENTCORE}:token-vault/default"
SECRET = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
DEMO_API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com"  # what CloudFormation puts in for the GetAtt
# What CloudFormation puts in for the pseudo parameters, and for the demo API's endpoint.
RESOLVED = {
    json.dumps({"Ref": "AWS::Partition"}): "aws",
    json.dumps({"Ref": "AWS::Region"}): "eu-west-1",
    json.dumps({"Ref": "AWS::AccountId"}): "111122223333",
    json.dumps({"Fn::GetAtt": ["DemoApi48A1D1CD", "ApiEndpoint"]}): DEMO_API_URL,
}


def _agent_environment(template: dict[str, Any]) -> dict[str, Any]:
    [task] = [t for k, t in resources(template, "AWS::ECS::TaskDefinition").items() if k.startswith("AgentTaskDefinition")]
    return {e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]}


def resolved_providers(synthesized: Synth) -> list[dict[str, Any]]:
    """`PROVIDERS` as the agent reads it: the template's value, the demo API's endpoint and the pseudo parameters joined
    in as CloudFormation would (any other token fails here: it would have to resolve in the template)."""
    value = _agent_environment(synthesized.raw("services"))["PROVIDERS"]
    if isinstance(value, dict):
        separator, parts = value["Fn::Join"]
        assert all(json.dumps(part) in RESOLVED for part in parts if not isinstance(part, str)), parts
        value = separator.join(part if isinstance(part, str) else RESOLVED[json.dumps(part)] for part in parts)
    assert isinstance(value, str)
    parsed: list[dict[str, Any]] = json.loads(value)
    assert value == json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)  # compact JSON
    return parsed


def _task_statements(synthesized: Synth, service: str) -> list[dict[str, Any]]:
    return statements(one(synthesized.raw("services"), "AWS::IAM::ManagedPolicy", f"{service}TaskPolicy"))


def _resources_of(stmts: list[dict[str, Any]], action: str) -> list[str]:
    [statement] = [s for s in stmts if action in as_list(s["Action"])]
    return as_list(statement["Resource"])


def test_the_default_providers_environment(demo: Synth) -> None:
    assert resolved_providers(demo) == [
        {
            "name": "notes",
            "kind": "demo",
            "display_name": "Demo Notes",
            "credential_provider": "agentcore-ecs-sandbox-notes",
            "scopes": {
                "demo-api/profile.read": "See your profile (name and email address)",
                "demo-api/notes.read": "Read your notes",
                "demo-api/notes.write": "Create, change and delete your notes",
            },
            "api_url": DEMO_API_URL,
        },
        {
            "name": "tasks",
            "kind": "demo",
            "display_name": "Demo Tasks",
            "credential_provider": "agentcore-ecs-sandbox-tasks",
            "scopes": {"demo-api/tasks.read": "Read your task list", "demo-api/tasks.write": "Add and complete tasks"},
            "api_url": DEMO_API_URL,
        },
    ]


def test_the_environment_is_what_the_agent_reads(demo: Synth, three: Synth, github: Synth, three_revoking: Synth) -> None:
    """Each entry is a valid `ProviderSpec` of services/agent/settings.py, the reader named in services/common/environment.py."""
    from services.agent.settings import ProviderSpec

    for synthesized in (demo, three, github, three_revoking):
        for entry in resolved_providers(synthesized):
            assert ProviderSpec.model_validate(entry).model_dump(exclude_none=True) == entry


def test_three_providers_in_config_order_in_the_environment(three: Synth) -> None:
    entries = resolved_providers(three)
    assert [(e["name"], e["kind"], e["display_name"], e["credential_provider"]) for e in entries] == [
        ("notes", "demo", "Demo Notes", "agentcore-ecs-sandbox-notes"),
        ("github", "github", "GitHub", "agentcore-ecs-sandbox-github"),
        ("idp", "custom-oidc", "Company IdP", "agentcore-ecs-sandbox-idp"),
    ]
    assert [e.get("api_url") for e in entries] == [DEMO_API_URL, None, None]  # only a demo provider has the demo API
    assert entries[1]["scopes"] == {"read:user": "See your GitHub profile", "repo": "Read and change your public and private repositories"}
    assert entries[2]["scopes"] == {"openid": "Confirm who you are"}


def test_a_vendor_only_deployment_has_a_plain_environment(github: Synth) -> None:
    value = _agent_environment(github.raw("services"))["PROVIDERS"]
    assert isinstance(value, str)  # nothing for CloudFormation to join: no demo API
    assert [e["name"] for e in json.loads(value)] == ["github"]


def test_each_provider_has_its_own_credential_provider(three: Synth) -> None:
    found = {
        p["Properties"]["Name"]: p["Properties"]
        for p in resources(three.raw("agent_identity"), "AWS::BedrockAgentCore::OAuth2CredentialProvider").values()
    }
    assert {name: p["CredentialProviderVendor"] for name, p in found.items()} == {
        "agentcore-ecs-sandbox-notes": "CustomOauth2",
        "agentcore-ecs-sandbox-github": "GithubOauth2",
        "agentcore-ecs-sandbox-idp": "CustomOauth2",
    }
    notes = render(found["agentcore-ecs-sandbox-notes"]["Oauth2ProviderConfigInput"]["CustomOauth2ProviderConfig"])
    idp = render(found["agentcore-ecs-sandbox-idp"]["Oauth2ProviderConfigInput"]["CustomOauth2ProviderConfig"])
    github = render(found["agentcore-ecs-sandbox-github"]["Oauth2ProviderConfigInput"]["GithubOauth2ProviderConfig"])
    assert "AgentCoreClientNotes" in notes["ClientId"] and "AgentCoreClientNotesClientSecret" in notes["ClientSecretConfig"]["SecretId"]
    assert (github["ClientId"], github["ClientSecretConfig"]["SecretId"]) == ("Iv1.0123456789abcdef", "agent/github-oauth")
    assert (idp["ClientId"], idp["ClientSecretConfig"]["SecretId"]) == ("agent", "idp/agent")
    assert idp["OauthDiscovery"] == {"DiscoveryUrl": "https://idp.example.org/.well-known/openid-configuration"}
    assert notes["OauthDiscovery"]["DiscoveryUrl"].startswith("https://cognito-idp.")


def test_each_provider_has_its_own_outputs(three: Synth) -> None:
    outputs = three.raw("agent_identity")["Outputs"]
    for name, label in (
        ("Notes", "Demo Notes (notes, demo)"),
        ("Github", "GitHub (github, github)"),
        ("Idp", "Company IdP (idp, custom-oidc)"),
    ):
        assert render(outputs[f"CallbackUrl{name}"]["Value"]).startswith(f"${{CredentialProvider{name}")
        assert outputs[f"CallbackUrl{name}"]["Description"].startswith(label)
        assert outputs[f"CredentialProviderName{name}"]["Value"] == f"agentcore-ecs-sandbox-{name.lower()}"
    assert outputs["CallbackUrlGithub"]["Description"].endswith("register this redirect URI in your github OAuth app")
    assert outputs["CallbackUrlIdp"]["Description"].endswith("register this redirect URI in your custom-oidc OAuth app")
    assert "registered at the demo authorization server automatically" in outputs["CallbackUrlNotes"]["Description"]


def test_only_the_demo_provider_is_registered_and_served_by_the_demo_api(three: Synth) -> None:
    [registration] = resources(three.raw("agent_identity"), "Custom::AWS")
    assert registration.startswith("DemoCallbackRegistrationNotes")
    clients = [k for k in resources(three.raw("identity"), "AWS::Cognito::UserPoolClient") if "AgentCoreClient" in k]
    assert len(clients) == 1 and "AgentCoreClientNotes" in clients[0]
    [function] = [f for k, f in resources(three.raw("services"), "AWS::Lambda::Function").items() if k.startswith("DemoApiFunction")]
    ids = render(function["Properties"]["Environment"]["Variables"]["DEMO_CLIENT_IDS"])
    assert ids.startswith("${Import:") and "AgentCoreClientNotes" in ids and " " not in ids


@pytest.mark.parametrize(("service", "action"), [("Agent", "GetResourceOauth2Token"), ("SessionBinding", "CompleteResourceTokenAuth")])
def test_each_role_names_exactly_the_configured_credential_providers(three: Synth, service: str, action: str) -> None:
    granted = _resources_of(_task_statements(three, service), f"bedrock-agentcore:{action}")
    providers = [f"{VAULT}/oauth2credentialprovider/agentcore-ecs-sandbox-{name}" for name in ("notes", "github", "idp")]
    assert sorted(granted) == sorted([DIRECTORY, WORKLOAD, VAULT, *providers])


@pytest.mark.parametrize("service", ["Agent", "SessionBinding"])
def test_each_role_reads_exactly_the_configured_client_secrets(three: Synth, service: str) -> None:
    demo_secret, github, idp = _resources_of(_task_statements(three, service), "secretsmanager:GetSecretValue")
    assert demo_secret.startswith("${Import:") and "AgentCoreClientNotesClientSecret" in demo_secret
    assert (github, idp) == (f"{SECRET}agent/github-oauth-??????", f"{SECRET}idp/agent-??????")


# --------------------------------------------------------------------------- revoke_on_disconnect

SECRET_READ_TO_REVOKE = {
    "Sid": "ReadClientSecretToRevoke",
    "Effect": "Allow",
    "Action": "secretsmanager:GetSecretValue",
    "Resource": [f"{SECRET}agent/github-oauth-??????", f"{SECRET}idp/agent-??????"],  # no condition: the task code reads them
}


def test_revoking_providers_say_how_to_revoke_with_the_clients_credentials(three: Synth, three_revoking: Synth) -> None:
    notes, github, idp = resolved_providers(three_revoking)
    assert "revoke" not in notes  # the demo provider keeps the default
    assert github["revoke"] == {
        "method": "github",
        "client_id": "Iv1.0123456789abcdef",
        "client_secret_arn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:agent/github-oauth",
        "client_secret_json_key": "client_secret",
    }
    assert idp["revoke"] == {
        "method": "rfc7009",
        "client_id": "agent",
        "client_secret_arn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:idp/agent",
        "client_secret_json_key": "client_secret",
        "endpoint": IDP_REVOCATION_URL,
    }
    # Everything else is the entry without the setting.
    assert [{k: v for k, v in e.items() if k != "revoke"} for e in (notes, github, idp)] == resolved_providers(three)


def test_the_revoke_secret_is_the_one_agentcore_reads(three_revoking: Synth) -> None:
    """`client_secret_arn` names the secret each credential provider references (by name, here) and its JSON key."""
    referenced = {
        p["Properties"]["Name"]: next(iter(p["Properties"]["Oauth2ProviderConfigInput"].values()))["ClientSecretConfig"]
        for p in resources(three_revoking.raw("agent_identity"), "AWS::BedrockAgentCore::OAuth2CredentialProvider").values()
    }
    for entry in resolved_providers(three_revoking)[1:]:
        config = referenced[entry["credential_provider"]]
        assert entry["revoke"]["client_secret_arn"].endswith(f":secret:{config['SecretId']}")
        assert entry["revoke"]["client_secret_json_key"] == config["JsonKey"]


def test_revoking_adds_exactly_one_statement_to_the_agent_role_only(three: Synth, three_revoking: Synth) -> None:
    """The agent's policy is the default one plus a direct read of the revoking providers' secrets, each by its name
    and Secrets Manager's six-character suffix; the session binding role's policy does not change."""
    before, after = _task_statements(three, "Agent"), _task_statements(three_revoking, "Agent")
    assert [s for s in after if s not in before] == [SECRET_READ_TO_REVOKE]
    assert [s for s in after if s != SECRET_READ_TO_REVOKE] == before
    assert _task_statements(three_revoking, "SessionBinding") == _task_statements(three, "SessionBinding")


@pytest.mark.parametrize("shape", ["demo", "three", "github"])
def test_by_default_no_revoke_entry_and_no_direct_secret_read(shape: str, request: pytest.FixtureRequest) -> None:
    """Off by default: no `revoke` in PROVIDERS, and the agent reads no secret itself (every GetSecretValue it holds
    is for AgentCore's reads on its behalf, aws:ViaAWSService)."""
    synthesized: Synth = request.getfixturevalue(shape)
    assert [e for e in resolved_providers(synthesized) if "revoke" in e] == []
    reads = [s for s in _task_statements(synthesized, "Agent") if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert [s.get("Condition") for s in reads] == [{"Bool": {"aws:ViaAWSService": "true"}}]
    assert all(s.get("Sid") != "ReadClientSecretToRevoke" for s in _task_statements(synthesized, "Agent"))
