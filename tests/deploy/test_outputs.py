"""After `make deploy`: what the person is told to do next, read from the deployed stacks' outputs."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import pytest
from botocore.stub import Stubber

from deploy import outputs
from tests.support.moto_aws import REGION, MotoAws, moto_aws

DOMAIN = ["-c", "domain_name=agent.example.org", "-c", "hosted_zone_id=Z0123456789ABCDEFGHIJ", "-c", "hosted_zone_name=example.org"]
GITHUB = ["-c", "provider=github", "-c", "provider_client_id=Iv1.0123456789abcdef", "-c", "provider_client_secret_name=agent/github-oauth"]
POOL_ID = f"{REGION}_AbCdEf123"
CALLBACK = f"https://bedrock-agentcore.{REGION}.amazonaws.com/identities/callback/0f8c1e2a-1111-2222-3333-444455556666"


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
        {"ProviderCallbackUrl": CALLBACK, "SessionBindingUrl": "https://agent.example.org/oauth2/session-binding"},
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
        "Callback URL: register this redirect URI at github "
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
    assert (
        "Callback URL: nothing to do for provider demo: AgentCore's callback URL is registered at the demo authorization server automatically."
        in text
    )
    assert CALLBACK not in text
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
