"""The one seam through which the deploy helpers (preflight, outputs, teardown) call AWS.

Synth never calls AWS; these helpers run around `cdk deploy` and `cdk destroy` only. Every
client comes from `AwsClients`, so tests point a real boto3 session at a local stand-in
(an endpoint URL) instead of patching anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

# Explicit timeouts and the standard retry mode: a helper that hangs is worse than one that fails.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
# STS answers account questions in any region; used only while no region is known.
_STS_FALLBACK_REGION = "us-east-1"


def region_from_environment(environ: Mapping[str, str], session: boto3.Session) -> str | None:
    """The region the CDK CLI would pick: AWS_REGION, AWS_DEFAULT_REGION, then the profile's `region`."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = environ.get(name, "").strip()
        if value:
            return value
    region: str | None = session.region_name
    return region


def bootstrap_role_arn(*, partition: str, account: str, region: str, qualifier: str, kind: str) -> str:
    """A role `cdk bootstrap` creates: kind is deploy, lookup, file-publishing or image-publishing."""
    return f"arn:{partition}:iam::{account}:role/cdk-{qualifier}-{kind}-role-{account}-{region}"


class AwsClients:
    """One boto3 session, one region, one client per service."""

    def __init__(self, session: boto3.Session, *, region: str | None, endpoint_url: str | None = None) -> None:
        self.session = session
        self.region = region
        self._endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}

    @classmethod
    def from_environment(cls, *, profile: str | None, region: str | None, environ: Mapping[str, str]) -> AwsClients:
        """The caller's credentials as the AWS CLI and the CDK CLI find them.

        `region` (from `-c region=...`) wins over the environment, because the stacks deploy there.
        Raises botocore's `ProfileNotFound` for an unknown profile name.
        """
        session = boto3.Session(profile_name=profile)
        return cls(session, region=region or region_from_environment(environ, session))

    @property
    def endpoint_url(self) -> str | None:
        """The one endpoint every client uses (a local stand-in in tests), or None for AWS's own."""
        return self._endpoint_url

    def client(self, service: str) -> Any:
        if service not in self._clients:
            region = self.region or (_STS_FALLBACK_REGION if service == "sts" else None)
            self._clients[service] = self.session.client(
                service, region_name=region, endpoint_url=self._endpoint_url, config=_CLIENT_CONFIG
            )
        return self._clients[service]

    def as_bootstrap_role(self, kind: str, qualifier: str) -> AwsClients:
        """The seam as one of this account and region's CDK bootstrap roles.

        A least-privilege CI identity (such as the GitHub deploy role) may do little more than assume these.
        """
        identity = self.client("sts").get_caller_identity()
        account = str(identity["Account"])
        role = bootstrap_role_arn(
            partition=str(identity["Arn"]).split(":")[1], account=account, region=str(self.region), qualifier=qualifier, kind=kind
        )
        return self.assume_role(role, "cdk-helper")

    def assume_role(self, role_arn: str, session_name: str) -> AwsClients:
        """The same seam with a role's temporary credentials (same region, same endpoint)."""
        response = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=900)
        credentials = response["Credentials"]
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        return AwsClients(session, region=self.region, endpoint_url=self._endpoint_url)
