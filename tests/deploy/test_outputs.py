"""After `make deploy`: what the person is told to do next, read from the deployed stacks' outputs."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import pytest
from botocore.stub import Stubber

from deploy import outputs
from tests.support.moto_aws import REGION, MotoAws, moto_aws

DOMAIN = ["-c", "domain_name=agent.example.org", "-c", "hosted_zone_id=Z0123456789ABCDEFGHIJ", "-c", "hosted_zone_name=example.org"]
GITHUB_PROVIDER = {
    "name": "github",
    "kind": "github",
    "display_name": "GitHub",
    "client_id": "Iv1.0123456789abcdef",
    "client_secret_name": "agent/github-oauth",
}
GITHUB = ["-c", f"providers={json.dumps([GITHUB_PROVIDER])}"]
POOL_ID = f"{REGION}_AbCdEf123"
CALLBACK = f"https://bedrock-agentcore.{REGION}.amazonaws.com/identities/callback/0f8c1e2a-1111-2222-3333-444455556666"
CALLBACK_2 = f"https://bedrock-agentcore.{REGION}.amazonaws.com/identities/callback/0f8c1e2a-1111-2222-3333-777788889999"
# AgentCore's callback URL per provider, as the agent identity stack names its outputs (CallbackUrl<Name>).
CALLBACKS = {"CallbackUrlGithub": CALLBACK, "CallbackUrlNotes": CALLBACK_2, "CallbackUrlTasks": CALLBACK_2, "CallbackUrlIdp": CALLBACK_2}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoAws:
    monkeypatch.setenv("HOME", str(tmp_path))
    return moto_aws()


def deploy(aws: MotoAws, profile: str = "sandbox", **service_outputs: str) -> None:
    """The two stacks the helper reads, with the outputs the real stacks declare (CfnOutput ids)."""
    aws.create_stack(
        f"agentcore-ecs-{profile}-services",
        service_outputs or {"AgentUrl": "https://agent.example.org/", "SignInUserPoolId": POOL_ID, "LoadBalancerDnsName": "alb.example"},
    )
    aws.create_stack(
        f"agentcore-ecs-{profile}-agent-identity",
        {**CALLBACKS, "SessionBindingUrl": "https://agent.example.org/oauth2/session-binding"},
    )


def run(aws: MotoAws, argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = outputs.main(argv, clients=aws.clients(), out=out)
    return code, out.getvalue()


def test_external_provider_gets_the_callback_url_and_the_first_user_command(aws: MotoAws) -> None:
    deploy(aws)
    code, text = run(aws, [*DOMAIN, *GITHUB])

    assert code == 0
    lines = text.splitlines()
    assert "Agent URL: https://agent.example.org/" in lines
    index = lines.index(
        "Callback URL for GitHub (github): register this redirect URI at github "
        "(GitHub > Settings > Developer settings > OAuth Apps > your app > Authorization callback URL):"
    )
    assert lines[index + 1] == f"  {CALLBACK}"
    command = shlex.split(lines[lines.index(next(line for line in lines if line.startswith("First user"))) + 1])
    assert command == [
        "aws",
        "cognito-idp",
        "admin-create-user",
        "--region",
        REGION,
        "--user-pool-id",
        POOL_ID,
        "--username",
        "you@example.com",
        "--user-attributes",
        "Name=email,Value=you@example.com",
        "Name=email_verified,Value=true",
        "--desired-delivery-mediums",
        "EMAIL",
    ]
    assert "demo" not in text


def test_demo_says_the_callback_is_registered_automatically(aws: MotoAws) -> None:
    deploy(aws)
    aws.create_stack("agentcore-ecs-sandbox-identity", {})
    code, text = run(aws, DOMAIN)

    assert code == 0
    for name in ("Demo Notes (notes)", "Demo Tasks (tasks)"):
        assert (
            f"Callback URL for {name}: nothing to do: AgentCore's callback URL is registered at the demo authorization server automatically."
            in text
        )
    assert CALLBACK_2 not in text
    assert "Demo providers (Demo Notes, Demo Tasks): create the same person at the demo authorization server" in text
    assert f"--user-pool-id {POOL_ID}" in text
    # moto's CloudFormation cannot create Cognito pools, so the identity stack's pool is not found here.
    assert "its user pool is the DemoAuthorizationServer pool of stack agentcore-ecs-sandbox-identity" in text


def test_demo_without_a_readable_identity_stack_still_prints_the_rest(aws: MotoAws) -> None:
    deploy(aws)  # no identity stack: ListStackResources fails
    code, text = run(aws, DOMAIN)
    assert code == 0 and "Agent URL: https://agent.example.org/" in text


def test_demo_pool_is_found_among_the_identity_stack_resources(aws: MotoAws) -> None:
    """ListStackResources as CloudFormation answers it for the real identity stack (fed through the seam)."""
    clients = aws.clients()
    cloudformation = clients.client("cloudformation")
    summaries = [
        ("SignInPoolFD298EFA", "AWS::Cognito::UserPool", POOL_ID),
        ("DemoAuthorizationServerPoolDemoApi61CB9D08", "AWS::Cognito::UserPoolResourceServer", "demo-api"),
        ("DemoAuthorizationServerPool5D5371D5", "AWS::Cognito::UserPool", f"{REGION}_DemoPool9"),
    ]
    response = {
        "StackResourceSummaries": [
            {
                "LogicalResourceId": logical,
                "ResourceType": kind,
                "PhysicalResourceId": physical,
                "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
                "ResourceStatus": "CREATE_COMPLETE",
            }
            for logical, kind, physical in summaries
        ]
    }
    with Stubber(cloudformation) as stub:
        stub.add_response("list_stack_resources", response, {"StackName": "agentcore-ecs-sandbox-identity"})
        assert outputs.demo_user_pool_id(clients, "agentcore-ecs-sandbox-identity") == f"{REGION}_DemoPool9"


def test_each_external_provider_gets_its_own_callback_url(aws: MotoAws) -> None:
    deploy(aws)
    aws.create_stack("agentcore-ecs-sandbox-identity", {})
    notes = {"name": "notes", "kind": "demo", "display_name": "Demo Notes", "scopes": {"demo-api/notes.read": "Read your notes"}}
    idp = {
        "name": "idp",
        "kind": "custom-oidc",
        "display_name": "Company IdP",
        "client_id": "agent",
        "client_secret_name": "idp/agent",
        "discovery_url": "https://idp.example.org/.well-known/openid-configuration",
    }
    code, text = run(aws, [*DOMAIN, "-c", f"providers={json.dumps([notes, GITHUB_PROVIDER, idp])}"])
    assert code == 0
    lines = text.splitlines()
    github = lines.index(next(line for line in lines if line.startswith("Callback URL for GitHub (github): register")))
    assert lines[github + 1] == f"  {CALLBACK}"
    assert lines[github + 2] == (
        "Callback URL for Company IdP (idp): register this redirect URI at custom-oidc "
        "(your provider's client registration > redirect URIs):"
    )
    assert lines[github + 3] == f"  {CALLBACK_2}"
    assert lines[github - 1].startswith("Callback URL for Demo Notes (notes): nothing to do")
    assert "Demo providers (Demo Notes): create the same person" in text


def test_a_missing_callback_output_names_it(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.create_stack("agentcore-ecs-sandbox-services", {"AgentUrl": "https://agent.example.org/", "SignInUserPoolId": POOL_ID})
    aws.create_stack("agentcore-ecs-sandbox-agent-identity", {"CallbackUrlNotes": CALLBACK_2})
    assert run(aws, DOMAIN)[0] == 2
    assert "stack agentcore-ecs-sandbox-agent-identity has no output CallbackUrlTasks" in capsys.readouterr().err


def test_prod_profile_reads_the_prod_stacks(aws: MotoAws) -> None:
    deploy(aws, profile="prod")
    code, text = run(aws, [*DOMAIN, *GITHUB, "-c", "profile=prod"])
    assert code == 0 and "Deployed agentcore-ecs (profile prod) in eu-west-1." in text


def test_not_deployed(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(aws, DOMAIN)
    assert (code, text) == (2, "")
    assert capsys.readouterr().err == (
        f"outputs: stack agentcore-ecs-sandbox-services not found in {REGION}: deploy first (`make deploy` with the same ARGS)\n"
    )


def test_missing_output(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    deploy(aws, AgentUrl="https://agent.example.org/")
    assert run(aws, DOMAIN)[0] == 2
    assert capsys.readouterr().err == (
        "outputs: stack agentcore-ecs-sandbox-services has no output SignInUserPoolId (status CREATE_COMPLETE): "
        "run `make deploy` again and check its errors\n"
    )


def test_config_error(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(aws, [*DOMAIN, "-c", "profile=staging"])[0] == 2
    assert capsys.readouterr().err == "config error: context key 'profile': expected one of sandbox, prod; got 'staging'\n"


def test_no_region(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    assert outputs.main(DOMAIN, clients=aws.clients(region=None)) == 2
    assert capsys.readouterr().err.startswith("outputs: no AWS region: set AWS_REGION")
