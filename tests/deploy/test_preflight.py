"""`make deploy`'s preflight: every failure line, and the all-good path, against moto on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from deploy.aws_clients import AwsClients, region_from_environment
from deploy.cdk_args import PROJECT_DIR, cdk_context, parse_cdk_args
from deploy.preflight import PreflightReport, print_report, run_preflight
from tests.support.moto_aws import ACCOUNT, REGION, MotoAws, moto_aws

DOMAIN = ["-c", "domain_name=agent.example.org", "-c", "hosted_zone_id=Z0123456789ABCDEFGHIJ", "-c", "hosted_zone_name=example.org"]
GITHUB_PROVIDER = {
    "name": "github",
    "kind": "github",
    "display_name": "GitHub",
    "client_id": "Iv1.0123456789abcdef",
    "client_secret_name": "agent/github-oauth",
}
GITHUB = ["-c", f"providers={json.dumps([GITHUB_PROVIDER])}"]
PLACEHOLDER_LINE = (
    "context key 'domain_name' is the placeholder agent.example.com: pass -c domain_name=... -c hosted_zone_id=... "
    "-c hosted_zone_name=... (or -c certificate_arn=... -c hosted_zone_id= -c hosted_zone_name=)"
)
NO_REGION_LINE = (
    "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or `region` in your AWS profile), or pass -c account=... -c region=..."
)
NO_CREDENTIALS_LINE = "no AWS credentials: run `aws configure` or set AWS_PROFILE"
MAKE = shutil.which("make") or "make"
NOT_BOOTSTRAPPED_LINE = f"not bootstrapped: run `npx cdk bootstrap aws://{ACCOUNT}/{REGION}`"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MotoAws:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cdk.json from the machine running the tests
    return moto_aws()


def preflight(aws: MotoAws, argv: list[str], *, region: str | None = REGION, **keys: str) -> PreflightReport:
    return run_preflight(argv, lambda _profile, config_region: aws.clients(config_region or region, **keys))


def github_secret(aws: MotoAws, name: str = "agent/github-oauth") -> None:
    aws.client("secretsmanager").create_secret(Name=name, SecretString='{"client_secret": "s3cr3t"}')


# --------------------------------------------------------------------------- all good


def test_all_good_for_an_external_provider(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.bootstrap()
    github_secret(aws)

    report = preflight(aws, [*DOMAIN, *GITHUB, "--require-approval", "never"])

    assert report.failures == [] and report.warnings == []
    assert report.passed == [
        "config: agentcore-ecs-sandbox-* stacks serving https://agent.example.org/",
        f"account {ACCOUNT}, region {REGION} (arn:aws:sts::{ACCOUNT}:user/moto)",
        "CDK bootstrap version 27 (qualifier hnb659fds)",
        "provider github (github): client secret 'agent/github-oauth' exists",
    ]
    assert print_report(report, sys.stdout, sys.stderr) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "preflight: all checks passed" and err == ""


def test_all_good_for_demo_with_a_certificate_and_a_pinned_environment(aws: MotoAws) -> None:
    aws.bootstrap()
    certificate = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/12345678-1234-1234-1234-123456789012"
    argv = ["-c", "domain_name=agent.example.org", "-c", "hosted_zone_id=", "-c", "hosted_zone_name="]
    argv += ["--context", f"certificate_arn={certificate}", f"--context=account={ACCOUNT}", "-c", f"region={REGION}"]

    # The credentials' own region differs: -c region wins, as it does for cdk deploy.
    report = preflight(aws, argv, region="us-west-2")

    assert report.failures == []
    assert "provider notes (demo): its client and secret are created by the stacks" in report.passed
    assert "provider tasks (demo): its client and secret are created by the stacks" in report.passed


def test_each_external_provider_secret_is_checked(aws: MotoAws) -> None:
    aws.bootstrap()
    github_secret(aws)
    demo = {"name": "notes", "kind": "demo", "display_name": "Demo Notes", "scopes": {"demo-api/notes.read": "Read your notes"}}
    idp = {**GITHUB_PROVIDER, "name": "idp", "kind": "slack", "display_name": "Slack", "client_secret_name": "agent/slack"}
    report = preflight(aws, [*DOMAIN, "-c", f"providers={json.dumps([demo, GITHUB_PROVIDER, idp])}"])
    assert report.passed[-2:] == [
        "provider notes (demo): its client and secret are created by the stacks",
        "provider github (github): client secret 'agent/github-oauth' exists",
    ]
    assert report.failures == [
        f"provider idp (slack): secret 'agent/slack' not found in {REGION}: create it with "
        f"`aws secretsmanager create-secret --region {REGION} --name agent/slack "
        """--secret-string '{"client_secret":"<slack client secret>"}'`"""
    ]


# --------------------------------------------------------------------------- config


def test_shipped_placeholders_are_refused_with_the_keys_to_pass(aws: MotoAws) -> None:
    aws.bootstrap()
    assert preflight(aws, []).failures == [PLACEHOLDER_LINE]


def test_placeholder_zone_under_a_real_looking_name_is_refused_per_key(aws: MotoAws) -> None:
    aws.bootstrap()
    report = preflight(aws, ["-c", "domain_name=chat.example.com"])
    assert [line.split(":")[0] for line in report.failures] == [
        "context key 'hosted_zone_id' is the placeholder Z0000000000EXAMPLE000",
        "context key 'hosted_zone_name' is the placeholder example.com",
    ]
    assert "for the Route 53 zone that holds chat.example.com" in report.failures[0]


def test_config_error_is_the_synth_line_and_aws_checks_still_run(aws: MotoAws) -> None:
    no_client = {"name": "github", "kind": "github", "display_name": "GitHub"}
    report = preflight(aws, [*DOMAIN, "-c", f"providers={json.dumps([no_client])}"])
    assert report.failures == [
        "config error: context key 'providers[0].client_id': expected the OAuth client id registered at github; it is missing",
        NOT_BOOTSTRAPPED_LINE,
    ]
    assert report.skipped == ["provider secrets (need a valid config)"]


def test_an_old_provider_key_says_what_to_write_instead(aws: MotoAws) -> None:
    aws.bootstrap()
    (line,) = preflight(aws, [*DOMAIN, "-c", "provider=github"]).failures
    assert line.startswith("config error: context key 'provider': expected the 'providers' list instead, e.g. providers=[{")


def test_unknown_key_is_a_config_error(aws: MotoAws) -> None:
    aws.bootstrap()
    (line,) = preflight(aws, [*DOMAIN, "-c", "domain=agent.example.org"]).failures
    assert line.startswith("config error: context key 'domain': expected a known configuration key (did you mean domain_name?)")


def test_context_is_merged_as_the_cdk_cli_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".cdk.json").write_text('{"context": {"app_name": "from-user", "profile": "prod"}}')
    project = tmp_path / "project"
    project.mkdir()
    (project / "cdk.context.json").write_text('{"app_name": "from-lookups", "nat_gateways": 1}')
    (project / "cdk.json").write_text('{"app": "x", "context": {"app_name": "from-project"}}')

    context = cdk_context(
        parse_cdk_args(["-c", "nat_gateways=2", "-c", "note=a=b", "-c", "not-an-assignment"]).context, project_dir=project
    )

    assert context == {"app_name": "from-project", "profile": "prod", "nat_gateways": "2", "note": "a=b"}
    assert parse_cdk_args(["--profile", "dev", "-c", "x=1"]).aws_profile == "dev"
    assert parse_cdk_args(["--profile=ci"]).aws_profile == "ci"
    assert cdk_context({}) == cdk_context({}, project_dir=PROJECT_DIR)


# --------------------------------------------------------------------------- credentials, account, region


def test_no_credentials_no_region_and_placeholders_are_all_reported_by_the_cli(tmp_path: Path) -> None:
    """The real entry point, with no credentials and no region anywhere: botocore stops before any request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "deploy.preflight", "--require-approval", "broadening"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"preflight: {PLACEHOLDER_LINE}",
        f"preflight: {NO_REGION_LINE}",
        f"preflight: {NO_CREDENTIALS_LINE}",
        "preflight: 3 problems, nothing deployed (not checked yet: bootstrap and provider secrets)",
    ]


def test_unknown_aws_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))

    report = run_preflight([*DOMAIN, "--profile", "nope"], lambda p, r: AwsClients.from_environment(profile=p, region=r, environ={}))

    assert report.failures == [
        "AWS profile 'nope' not found: create it with `aws configure --profile nope`, or pick one from `aws configure list-profiles`"
    ]


def test_rejected_credentials(aws: MotoAws) -> None:
    with aws.iam_enforced():
        report = preflight(aws, DOMAIN, aws_access_key_id="AKIAUNKNOWN000000000", aws_secret_access_key="wrong")  # noqa: S106
    assert report.failures == [
        "AWS credentials rejected by STS (InvalidClientTokenId): refresh them (`aws sso login`, or new keys with `aws configure`)"
    ]


def test_no_region(aws: MotoAws) -> None:
    report = preflight(aws, DOMAIN, region=None)
    assert report.failures == [NO_REGION_LINE]


def test_region_from_the_environment_before_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config").write_text("[default]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    session = boto3.Session()

    assert region_from_environment({"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "eu-central-1"}, session) == "eu-north-1"
    assert region_from_environment({"AWS_DEFAULT_REGION": "eu-central-1"}, session) == "eu-central-1"
    assert region_from_environment({}, session) == "ap-south-1"
    # -c region=... wins over all of them: the stacks deploy there.
    assert AwsClients.from_environment(profile=None, region="us-west-2", environ={"AWS_REGION": "eu-north-1"}).region == "us-west-2"


def test_account_mismatch(aws: MotoAws) -> None:
    report = preflight(aws, [*DOMAIN, "-c", "account=111122223333", "-c", f"region={REGION}"])
    assert report.failures == [
        f"the AWS credentials are for account {ACCOUNT} but -c account=111122223333: "
        f"use credentials for 111122223333, or pass -c account={ACCOUNT}"
    ]


# --------------------------------------------------------------------------- bootstrap


def test_not_bootstrapped(aws: MotoAws) -> None:
    assert preflight(aws, DOMAIN).failures == [NOT_BOOTSTRAPPED_LINE]


def test_bootstrapped_in_another_region_only(aws: MotoAws) -> None:
    aws.bootstrap(region="us-east-1")
    assert preflight(aws, DOMAIN).failures == [NOT_BOOTSTRAPPED_LINE]


def test_custom_qualifier(aws: MotoAws) -> None:
    aws.bootstrap()  # the default qualifier's stack does not count
    report = preflight(aws, [*DOMAIN, "-c", "@aws-cdk/core:bootstrapQualifier=team42"])
    assert report.failures == [f"not bootstrapped: run `npx cdk bootstrap aws://{ACCOUNT}/{REGION} --qualifier team42`"]

    aws.bootstrap(qualifier="team42")
    assert preflight(aws, [*DOMAIN, "-c", "@aws-cdk/core:bootstrapQualifier=team42"]).failures == []


def test_bootstrap_too_old(aws: MotoAws) -> None:
    aws.bootstrap(version="5")
    assert preflight(aws, DOMAIN).failures == [
        f"CDK bootstrap version 5 in aws://{ACCOUNT}/{REGION} is too old: run `npx cdk bootstrap aws://{ACCOUNT}/{REGION}`"
    ]


# --------------------------------------------------------------------------- provider secret


def test_provider_secret_missing(aws: MotoAws) -> None:
    aws.bootstrap()
    own_key = {**GITHUB_PROVIDER, "client_secret_json_key": "secret"}
    report = preflight(aws, [*DOMAIN, "-c", f"providers={json.dumps([own_key])}"])
    assert report.failures == [
        f"provider github (github): secret 'agent/github-oauth' not found in {REGION}: create it with "
        f"`aws secretsmanager create-secret --region {REGION} --name agent/github-oauth "
        """--secret-string '{"secret":"<github client secret>"}'`"""
    ]


def test_provider_secret_in_another_region_does_not_count(aws: MotoAws) -> None:
    aws.bootstrap()
    aws.client("secretsmanager", "us-east-1").create_secret(Name="agent/github-oauth", SecretString="{}")
    (line,) = preflight(aws, [*DOMAIN, *GITHUB]).failures
    assert line.startswith(f"provider github (github): secret 'agent/github-oauth' not found in {REGION}: create it with")


def test_provider_secret_scheduled_for_deletion(aws: MotoAws) -> None:
    aws.bootstrap()
    github_secret(aws)
    aws.client("secretsmanager").delete_secret(SecretId="agent/github-oauth", RecoveryWindowInDays=7)
    assert preflight(aws, [*DOMAIN, *GITHUB]).failures == [
        "provider github (github): secret 'agent/github-oauth' is scheduled for deletion: restore it with "
        f"`aws secretsmanager restore-secret --region {REGION} --secret-id agent/github-oauth`"
    ]


# --------------------------------------------------------------------------- least-privilege callers (CI)


def test_caller_that_may_only_assume_the_bootstrap_roles(aws: MotoAws) -> None:
    """Like a GitHub OIDC deploy role: the checks go through the deploy and lookup roles the bootstrap created."""
    aws.bootstrap()
    github_secret(aws)
    keys = aws.iam_user("ci", ["sts:GetCallerIdentity", "sts:AssumeRole"])
    ci = f"arn:aws:iam::{ACCOUNT}:user/ci"
    aws.iam_role(f"cdk-hnb659fds-deploy-role-{ACCOUNT}-{REGION}", ["ssm:GetParameter"], trusted=ci)
    aws.iam_role(f"cdk-hnb659fds-lookup-role-{ACCOUNT}-{REGION}", ["secretsmanager:DescribeSecret"], trusted=ci)

    with aws.iam_enforced():
        report = preflight(aws, [*DOMAIN, *GITHUB], **keys)

    assert report.failures == [] and report.warnings == []
    assert "CDK bootstrap version 27 (qualifier hnb659fds)" in report.passed


def test_caller_without_any_way_to_read_the_bootstrap(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    aws.bootstrap()
    keys = aws.iam_user("ci", ["sts:GetCallerIdentity"])

    with aws.iam_enforced():
        report = preflight(aws, [*DOMAIN, *GITHUB], **keys)

    deploy_role = f"arn:aws:iam::{ACCOUNT}:role/cdk-hnb659fds-deploy-role-{ACCOUNT}-{REGION}"
    assert report.failures == [
        f"cannot confirm the CDK bootstrap in aws://{ACCOUNT}/{REGION}: neither arn:aws:iam::{ACCOUNT}:user/ci nor {deploy_role} "
        "may read SSM parameter /cdk-bootstrap/hnb659fds/version (AccessDenied); "
        f"if the account is not bootstrapped run `npx cdk bootstrap aws://{ACCOUNT}/{REGION}`"
    ]
    # Unverifiable is not missing: a warning, not a failure.
    assert report.warnings == [
        "provider github (github): could not check that secret 'agent/github-oauth' exists (AccessDenied); "
        "the deploy fails at the credential provider if it does not"
    ]
    assert print_report(report, sys.stdout, sys.stderr) == 2
    assert "preflight: warning: provider github (github): could not check" in capsys.readouterr().err


# --------------------------------------------------------------------------- everything at once, and make


def test_every_failure_is_printed_not_just_the_first(aws: MotoAws, capsys: pytest.CaptureFixture[str]) -> None:
    report = preflight(aws, GITHUB)

    assert print_report(report, sys.stdout, sys.stderr) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"preflight: {PLACEHOLDER_LINE}"
    assert err[1] == f"preflight: {NOT_BOOTSTRAPPED_LINE}"
    assert err[2].startswith("preflight: provider github (github): secret 'agent/github-oauth' not found")
    assert err[3] == "preflight: 3 problems, nothing deployed"


def test_make_deploy_runs_preflight_then_deploy_then_outputs() -> None:
    result = subprocess.run(
        [MAKE, "-n", "deploy", "ARGS=-c profile=sandbox"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=True
    )
    lines = [line for line in result.stdout.splitlines() if "-m deploy." in line or " deploy --all" in line]
    assert lines == [
        ".venv/bin/python -m deploy.preflight -c profile=sandbox",
        "node_modules/.bin/cdk deploy --all --no-notices --no-version-reporting --require-approval broadening -c profile=sandbox",
        ".venv/bin/python -m deploy.outputs -c profile=sandbox",
    ]


@pytest.mark.parametrize("region", ["ap-east-1", "us-gov-west-1"])
def test_a_region_where_the_app_cannot_run_is_refused_before_deploying(aws: MotoAws, region: str) -> None:
    """With no `-c region`, synth checked nothing: the region the credentials point at is checked here."""
    report = preflight(aws, DOMAIN, region=region)
    assert f"AWS region {region} cannot run this app: use a region" in "\n".join(report.failures)


def test_a_supported_region_from_the_environment_passes_the_region_check(aws: MotoAws) -> None:
    report = preflight(aws, DOMAIN)
    assert not [line for line in report.failures if "cannot run this app" in line]
