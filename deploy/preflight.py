"""Checks a deploy can work before `cdk deploy` starts: `python -m deploy.preflight [cdk args]`.

Each problem is one line saying what to do; all problems are printed, then the exit code is 2.
Checks: the config the app would synthesize (placeholders refused), AWS credentials, account and
region, the CDK bootstrap, and each external provider's client secret. AWS calls go through
`AwsClients` only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from cdk_app.config import AppConfig, ConfigError, ProviderConfig, load_config, region_not_offered
from deploy.aws_clients import AwsClients, bootstrap_role_arn
from deploy.cdk_args import PROJECT_DIR, bootstrap_qualifier, cdk_context, parse_cdk_args

# cdk.json ships these so that synth works out of the box; nobody can deploy them.
PLACEHOLDERS: Mapping[str, str] = {
    "domain_name": "agent.example.com",
    "hosted_zone_id": "Z0000000000EXAMPLE000",
    "hosted_zone_name": "example.com",
}
# aws-cdk-lib v2 templates refuse a bootstrap older than this (their CheckBootstrapVersion rule).
MIN_BOOTSTRAP_VERSION = 6
_ACCESS_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")

ClientsFactory = Callable[[str | None, str | None], AwsClients]


@dataclass
class PreflightReport:
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """Where the stacks go, as STS and the configuration say."""

    account: str
    region: str
    partition: str
    caller_arn: str

    @property
    def environment(self) -> str:
        return f"aws://{self.account}/{self.region}"

    def bootstrap_role(self, qualifier: str, kind: str) -> str:
        return bootstrap_role_arn(partition=self.partition, account=self.account, region=self.region, qualifier=qualifier, kind=kind)


def _code(error: ClientError) -> str:
    code = str(error.response.get("Error", {}).get("Code", "Unknown"))
    # An error body botocore cannot parse leaves the HTTP status as the code; 403 is a refusal.
    return "AccessDenied" if code == "403" else code


def _is_access_denied(error: ClientError) -> bool:
    return _code(error) in _ACCESS_DENIED


# --------------------------------------------------------------------------- config


def placeholder_failures(config: AppConfig) -> list[str]:
    """The shipped placeholders: one line for the domain (it names every key to pass), else per zone key."""
    certificate_hint = "(or -c certificate_arn=... -c hosted_zone_id= -c hosted_zone_name=)"
    if config.domain_name == PLACEHOLDERS["domain_name"]:
        return [
            f"context key 'domain_name' is the placeholder {PLACEHOLDERS['domain_name']}: pass -c domain_name=... "
            f"-c hosted_zone_id=... -c hosted_zone_name=... {certificate_hint}"
        ]
    failures = []
    for key, value in (("hosted_zone_id", config.hosted_zone_id), ("hosted_zone_name", config.hosted_zone_name)):
        if value == PLACEHOLDERS[key]:
            failures.append(
                f"context key '{key}' is the placeholder {value}: pass -c hosted_zone_id=... -c hosted_zone_name=... "
                f"for the Route 53 zone that holds {config.domain_name} {certificate_hint}"
            )
    return failures


# --------------------------------------------------------------------------- AWS


def _profile_not_found(error: ProfileNotFound) -> str:
    name = error.kwargs.get("profile", "")
    return (
        f"AWS profile '{name}' not found: create it with `aws configure --profile {name}`, or pick one from `aws configure list-profiles`"
    )


def _caller_identity(clients: AwsClients, report: PreflightReport) -> dict[str, Any] | None:
    try:
        return dict(clients.client("sts").get_caller_identity())
    except NoCredentialsError:
        report.failures.append("no AWS credentials: run `aws configure` or set AWS_PROFILE")
    except ProfileNotFound as error:
        report.failures.append(_profile_not_found(error))
    except ClientError as error:
        report.failures.append(
            f"AWS credentials rejected by STS ({_code(error)}): refresh them (`aws sso login`, or new keys with `aws configure`)"
        )
    except BotoCoreError as error:
        report.failures.append(f"cannot use the AWS credentials ({type(error).__name__}: {error})")
    return None


def resolve_target(clients: AwsClients, config: AppConfig | None, report: PreflightReport) -> Target | None:
    """Account from STS, region from `-c region` or the environment; both problems are reported if both apply."""
    region = clients.region
    if region is None:
        report.failures.append(
            "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or `region` in your AWS profile), or pass -c account=... -c region=..."
        )
    elif (config is None or config.region is None) and (expected := region_not_offered(region)) is not None:
        # Synth checks only a configured region; the environment's is known here, before anything is deployed.
        report.failures.append(f"AWS region {region} cannot run this app: use {expected}")
    identity = _caller_identity(clients, report)
    if identity is None or region is None:
        return None
    account = str(identity["Account"])
    caller_arn = str(identity["Arn"])
    if config is not None and config.account is not None and config.account != account:
        report.failures.append(
            f"the AWS credentials are for account {account} but -c account={config.account}: "
            f"use credentials for {config.account}, or pass -c account={account}"
        )
        return None
    report.passed.append(f"account {account}, region {region} ({caller_arn})")
    return Target(account=account, region=region, partition=caller_arn.split(":")[1], caller_arn=caller_arn)


def check_bootstrap(clients: AwsClients, target: Target, qualifier: str, report: PreflightReport) -> None:
    """The bootstrap stack's version parameter; through the deploy role when the caller may not read it (CI)."""
    parameter = f"/cdk-bootstrap/{qualifier}/version"
    command = f"npx cdk bootstrap {target.environment}"
    if qualifier != "hnb659fds":
        command += f" --qualifier {qualifier}"
    try:
        version = _bootstrap_version(clients, parameter)
    except ClientError as error:
        if not _is_access_denied(error):
            raise
        deploy_role = target.bootstrap_role(qualifier, "deploy")
        try:
            version = _bootstrap_version(clients.assume_role(deploy_role, "cdk-preflight"), parameter)
        except ClientError as role_error:
            report.failures.append(
                f"cannot confirm the CDK bootstrap in {target.environment}: neither {target.caller_arn} nor {deploy_role} "
                f"may read SSM parameter {parameter} ({_code(role_error)}); if the account is not bootstrapped run `{command}`"
            )
            return
    if version is None:
        report.failures.append(f"not bootstrapped: run `{command}`")
    elif version < MIN_BOOTSTRAP_VERSION:
        report.failures.append(f"CDK bootstrap version {version} in {target.environment} is too old: run `{command}`")
    else:
        report.passed.append(f"CDK bootstrap version {version} (qualifier {qualifier})")


def _bootstrap_version(clients: AwsClients, parameter: str) -> int | None:
    try:
        value = clients.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as error:
        if _code(error) == "ParameterNotFound":
            return None
        raise
    return int(value) if str(value).isdigit() else 0


def check_provider_secrets(clients: AwsClients, config: AppConfig, target: Target, qualifier: str, report: PreflightReport) -> None:
    """Each external provider's client secret must exist, by name, in the deployment region. No value is read."""
    for provider in config.providers:
        if provider.is_demo or provider.client_secret_name is None:
            report.passed.append(f"provider {provider.name} (demo): its client and secret are created by the stacks")
        else:
            check_provider_secret(clients, provider, target, qualifier, report)


def check_provider_secret(clients: AwsClients, provider: ProviderConfig, target: Target, qualifier: str, report: PreflightReport) -> None:
    assert provider.client_secret_name is not None
    name, label = provider.client_secret_name, f"provider {provider.name} ({provider.kind.value})"
    try:
        secret = _describe_secret(clients, name)
    except ClientError as error:
        if not _is_access_denied(error):
            report.failures.append(f"{label}: cannot check secret '{name}' ({_code(error)}): {error}")
            return
        # A least-privilege CI identity may only assume the bootstrap roles; the lookup role reads metadata.
        try:
            secret = _describe_secret(clients.assume_role(target.bootstrap_role(qualifier, "lookup"), "cdk-preflight"), name)
        except ClientError as role_error:
            report.warnings.append(
                f"{label}: could not check that secret '{name}' exists ({_code(role_error)}); "
                f"the deploy fails at the credential provider if it does not"
            )
            return
    if secret is None:
        json_key = provider.client_secret_json_key
        report.failures.append(
            f"{label}: secret '{name}' not found in {target.region}: create it with "
            f"`aws secretsmanager create-secret --region {target.region} --name {name} "
            f'--secret-string \'{{"{json_key}":"<{provider.kind.value} client secret>"}}\'`'
        )
    elif secret.get("DeletedDate") is not None:
        report.failures.append(
            f"{label}: secret '{name}' is scheduled for deletion: restore it with "
            f"`aws secretsmanager restore-secret --region {target.region} --secret-id {name}`"
        )
    else:
        report.passed.append(f"{label}: client secret '{name}' exists")


def _describe_secret(clients: AwsClients, name: str) -> dict[str, Any] | None:
    try:
        return dict(clients.client("secretsmanager").describe_secret(SecretId=name))
    except ClientError as error:
        if _code(error) == "ResourceNotFoundException":
            return None
        raise


# --------------------------------------------------------------------------- entry point


def run_preflight(
    argv: Sequence[str],
    clients_factory: ClientsFactory,
    *,
    project_dir: Path = PROJECT_DIR,
) -> PreflightReport:
    report = PreflightReport()
    args = parse_cdk_args(argv)
    context = cdk_context(args.context, project_dir=project_dir)
    config: AppConfig | None = None
    try:
        config = load_config(context)
    except ConfigError as error:
        report.failures.append(f"config error: {error}")
    if config is not None:
        placeholders = placeholder_failures(config)
        report.failures.extend(placeholders)
        if not placeholders:
            report.passed.append(f"config: {config.app_name}-{config.profile.value}-* stacks serving {config.base_url}/")

    try:
        clients = clients_factory(args.aws_profile, config.region if config else None)
    except ProfileNotFound as error:
        report.failures.append(_profile_not_found(error))
        report.skipped.append("credentials, bootstrap and provider secrets")
        return report
    target = resolve_target(clients, config, report)
    if target is None:
        report.skipped.append("bootstrap and provider secrets")
        return report
    qualifier = bootstrap_qualifier(context)
    try:
        check_bootstrap(clients, target, qualifier, report)
    except ClientError as error:
        report.failures.append(f"cannot read the CDK bootstrap version in {target.environment} ({_code(error)}): {error}")
    if config is None:
        report.skipped.append("provider secrets (need a valid config)")
    else:
        check_provider_secrets(clients, config, target, qualifier, report)
    return report


def print_report(report: PreflightReport, out: TextIO, err: TextIO) -> int:
    for line in report.passed:
        print(f"preflight: ok: {line}", file=out)
    for line in report.warnings:
        print(f"preflight: warning: {line}", file=err)
    for line in report.failures:
        print(f"preflight: {line}", file=err)
    if not report.failures:
        print("preflight: all checks passed", file=out)
        return 0
    skipped = f" (not checked yet: {'; '.join(report.skipped)})" if report.skipped else ""
    count = len(report.failures)
    print(f"preflight: {count} problem{'s' if count != 1 else ''}, nothing deployed{skipped}", file=err)
    return 2


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ

    def from_environment(profile: str | None, region: str | None) -> AwsClients:
        return AwsClients.from_environment(profile=profile, region=region, environ=env)

    report = run_preflight(sys.argv[1:] if argv is None else argv, from_environment)
    return print_report(report, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
