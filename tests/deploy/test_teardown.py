"""`make destroy`: the prod guard, and the leftover check by tag against moto on loopback."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import teardown
from deploy.cdk_args import PROJECT_DIR, load_cli_config, parse_cdk_args
from tests.support.moto_aws import ACCOUNT, REGION, MotoAws, moto_aws

DOMAIN = ["-c", "domain_name=agent.example.org", "-c", "hosted_zone_id=Z0123456789ABCDEFGHIJ", "-c", "hosted_zone_name=example.org"]
PROD = [*DOMAIN, "-c", "profile=prod"]
SANDBOX_TAGS = {"app": "agentcore-ecs", "profile": "sandbox"}
MAKE = shutil.which("make") or "make"


@pytest.fixture(autouse=True)
def no_user_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def aws() -> MotoAws:
    return moto_aws()


def run(argv: list[str], *, environ: dict[str, str] | None = None, aws: MotoAws | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = teardown.main(argv, environ=environ or {}, clients=aws.clients() if aws else None, out=out)
    return code, out.getvalue()


# --------------------------------------------------------------------------- guard


def test_guard_lets_sandbox_through(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(["guard", *DOMAIN])
    assert code == 0
    assert text == (
        "teardown: destroying agentcore-ecs-sandbox-services, agentcore-ecs-sandbox-agent-identity, "
        "agentcore-ecs-sandbox-identity, agentcore-ecs-sandbox-network\n"
    )


def test_guard_refuses_prod_without_confirmation(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["guard", *PROD]) == (2, "")
    assert capsys.readouterr().err == (
        "teardown: refusing to destroy profile prod: set CONFIRM_DESTROY_PROD=agentcore-ecs-prod in the environment to confirm\n"
    )


@pytest.mark.parametrize("value", ["1", "yes", "agentcore-ecs-sandbox", "other-app-prod", ""])
def test_guard_refuses_prod_with_the_wrong_confirmation(value: str) -> None:
    assert run(["guard", *PROD], environ={"CONFIRM_DESTROY_PROD": value})[0] == 2


def test_guard_confirmation_names_the_app(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["guard", *PROD, "-c", "app_name=chat-demo"]
    assert run(argv, environ={"CONFIRM_DESTROY_PROD": "agentcore-ecs-prod"})[0] == 2
    assert "CONFIRM_DESTROY_PROD=chat-demo-prod" in capsys.readouterr().err

    code, text = run(argv, environ={"CONFIRM_DESTROY_PROD": "chat-demo-prod"})
    assert code == 0
    assert "CONFIRM_DESTROY_PROD confirms destroying chat-demo-prod-services" in text
    assert "termination protection" in text  # the prod stacks have it: cdk destroy fails until it is off


def test_guard_includes_the_optional_github_deploy_stack() -> None:
    code, text = run(["guard", *DOMAIN, "-c", "github_repository=octo-org/agent"])
    assert code == 0 and "agentcore-ecs-sandbox-github-deploy, agentcore-ecs-sandbox-services" in text


def test_guard_reports_config_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["guard", *DOMAIN, "-c", "profile=staging"])[0] == 2
    assert capsys.readouterr().err == "config error: context key 'profile': expected one of sandbox, prod; got 'staging'\n"


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["nuke", *DOMAIN])[0] == 2
    assert capsys.readouterr().err.startswith("usage: python -m deploy.teardown guard|leftovers")


def test_guard_through_the_cli_and_make(tmp_path: Path) -> None:
    """`make destroy` stops at the guard for an unconfirmed prod: nothing after it runs."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "deploy.teardown", "guard", *PROD],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert "CONFIRM_DESTROY_PROD=agentcore-ecs-prod" in result.stderr

    plan = subprocess.run(
        [MAKE, "-n", "destroy", "ARGS=-c profile=prod"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=True
    )
    steps = [line for line in plan.stdout.splitlines() if "deploy.teardown" in line or " destroy --all" in line]
    assert steps == [
        ".venv/bin/python -m deploy.teardown guard -c profile=prod",
        "node_modules/.bin/cdk destroy --all --force --no-notices --no-version-reporting -c profile=prod",
        ".venv/bin/python -m deploy.teardown leftovers -c profile=prod",
    ]


# --------------------------------------------------------------------------- leftovers


def tag(aws: MotoAws, tags: dict[str, str], count: int = 1, prefix: str = "leftover") -> None:
    """Tagged resources of a few kinds: SSM parameters and Secrets Manager secrets."""
    ssm = aws.client("ssm")
    secrets = aws.client("secretsmanager")
    for i in range(count):
        ssm.put_parameter(Name=f"/{prefix}/{i}", Value="x", Type="String", Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    secrets.create_secret(Name=f"{prefix}-secret", SecretString="{}", Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def test_nothing_left(aws: MotoAws) -> None:
    tag(aws, {"app": "other-app", "profile": "sandbox"})
    tag(aws, {"app": "agentcore-ecs", "profile": "prod"}, prefix="prod")
    assert run(["leftovers", *DOMAIN], aws=aws) == (0, f"teardown: nothing left tagged app=agentcore-ecs,profile=sandbox in {REGION}\n")


def test_leftovers_listed_one_per_line_with_type(aws: MotoAws) -> None:
    tag(aws, SANDBOX_TAGS, count=2)
    tag(aws, {"app": "agentcore-ecs", "profile": "prod"}, prefix="prod")  # the other profile is not ours
    aws.create_stack("agentcore-ecs-sandbox-services", {}, tags=SANDBOX_TAGS)

    code, text = run(["leftovers", *DOMAIN], aws=aws)

    assert code == 0
    lines = text.splitlines()
    assert lines[0] == f"WARNING: 4 resources still tagged app=agentcore-ecs,profile=sandbox in {REGION} (may still be billed):"
    listed = [line.split() for line in lines[1:5]]
    assert sorted(kind for kind, _ in listed) == ["cloudformation:stack", "secretsmanager:secret", "ssm:parameter", "ssm:parameter"]
    assert all(arn.startswith(f"arn:aws:{kind.split(':')[0]}:{REGION}:{ACCOUNT}:") for kind, arn in listed)
    assert "prod" not in "".join(arn for _, arn in listed)
    assert lines[5].startswith("teardown: in sandbox nothing should remain")


def test_prod_leftovers_are_expected(aws: MotoAws) -> None:
    tag(aws, {"app": "agentcore-ecs", "profile": "prod"})
    code, text = run(["leftovers", *PROD], aws=aws)
    assert code == 0
    assert text.startswith("WARNING: 2 resources still tagged app=agentcore-ecs,profile=prod")
    assert "profile prod retains stateful resources on purpose" in text and "these are expected" in text


def test_leftovers_are_read_across_pages(aws: MotoAws) -> None:
    tag(aws, SANDBOX_TAGS, count=7)
    config = load_cli_config(parse_cdk_args(DOMAIN))
    leftovers = teardown.find_leftovers(aws.clients(), config, qualifier="hnb659fds", page_size=2)
    assert len(leftovers) == 8
    assert len({item.arn for item in leftovers}) == 8


def test_leftovers_through_the_lookup_role_when_the_caller_may_not_list_tags(aws: MotoAws) -> None:
    """The GitHub deploy role may only assume the bootstrap roles; the lookup role is read-only."""
    tag(aws, SANDBOX_TAGS)
    keys = aws.iam_user("ci", ["sts:GetCallerIdentity", "sts:AssumeRole"])
    # IAM's action is tag:GetResources; moto checks it under the service prefix `tagging`.
    actions = ["tag:GetResources", "tagging:GetResources"]
    aws.iam_role(f"cdk-hnb659fds-lookup-role-{ACCOUNT}-{REGION}", actions, trusted=f"arn:aws:iam::{ACCOUNT}:user/ci")

    with aws.iam_enforced():
        out = io.StringIO()
        code = teardown.main(["leftovers", *DOMAIN], environ={}, clients=aws.clients(**keys), out=out)

    assert code == 0 and out.getvalue().startswith("WARNING: 2 resources still tagged")


def test_leftovers_cannot_be_listed(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    keys = aws.iam_user("ci", ["sts:GetCallerIdentity"])
    with aws.iam_enforced():
        code = teardown.main(["leftovers", *DOMAIN], environ={}, clients=aws.clients(**keys), out=io.StringIO())
    assert code == 1
    assert capsys.readouterr().err.startswith("teardown: could not list leftovers (ClientError):")


def test_leftovers_without_region(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    code = teardown.main(["leftovers", *DOMAIN], environ={}, clients=aws.clients(region=None), out=io.StringIO())
    assert code == 1 and capsys.readouterr().err.startswith("teardown: no AWS region")


@pytest.mark.parametrize(
    ("arn", "kind"),
    [
        ("arn:aws:s3:::agentcore-ecs-access-logs-abc", "s3:bucket"),
        ("arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/agent", "logs:log-group"),
        ("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", "kms:key"),
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:agent/github-oauth-AbCdEf", "secretsmanager:secret"),
        (
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/agent/50dc6c495c0c9188",
            "elasticloadbalancing:loadbalancer",
        ),
        ("arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbCdEf123", "cognito-idp:userpool"),
        ("arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/agent/a1b2", "wafv2:webacl"),
        (
            "arn:aws:bedrock-agentcore:eu-west-1:123456789012:token-vault/default/oauth2credentialprovider/agentcore-ecs-prod-github",
            "bedrock-agentcore:oauth2credentialprovider",
        ),
        (
            "arn:aws:bedrock-agentcore:eu-west-1:123456789012:workload-identity-directory/default/workload-identity/agentcore-ecs-prod-agent",
            "bedrock-agentcore:workload-identity",
        ),
        ("arn:aws:sns:eu-west-1:123456789012:alarms", "sns"),
        ("not-an-arn", "unknown"),
    ],
)
def test_resource_type_from_arn(arn: str, kind: str) -> None:
    assert teardown.resource_type(arn) == kind
