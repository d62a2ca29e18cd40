"""AWS on loopback for the deploy helpers' tests: moto's server on 127.0.0.1, reached by real boto3 clients.

One server per test process (pytest-xdist workers each get theirs), reset before every test. The
helpers under test get an `AwsClients` whose endpoint is this server: request signing, serialisation
and error parsing are botocore's own, and nothing leaves the machine.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from moto.core.authorization import enable_iam_authentication
from moto.server import ThreadedMotoServer

from deploy.aws_clients import AwsClients

ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"
TEST_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # moto accepts any key while IAM is off


@cache
def _server_url() -> str:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class MotoAws:
    endpoint_url: str

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST")  # noqa: S310 (loopback http)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()

    def session(self, **keys: str) -> boto3.Session:
        return boto3.Session(**(keys or TEST_KEYS))

    def clients(self, region: str | None = REGION, **keys: str) -> AwsClients:
        """The seam as the helpers get it, pointed at moto."""
        return AwsClients(self.session(**keys), region=region, endpoint_url=self.endpoint_url)

    def client(self, service: str, region: str = REGION) -> Any:
        """For arranging state (administrator's view)."""
        return self.session().client(service, region_name=region, endpoint_url=self.endpoint_url)

    # ------------------------------------------------------------------ arrangements

    def bootstrap(self, version: str = "27", qualifier: str = "hnb659fds", region: str = REGION) -> None:
        self.client("ssm", region).put_parameter(Name=f"/cdk-bootstrap/{qualifier}/version", Value=version, Type="String")

    def create_stack(self, name: str, outputs: dict[str, str], tags: dict[str, str] | None = None, region: str = REGION) -> None:
        # A template needs one resource; moto's CloudFormation builds SSM parameters.
        parameter = {"Type": "AWS::SSM::Parameter", "Properties": {"Name": f"/stand-in/{name}", "Type": "String", "Value": "x"}}
        template: dict[str, Any] = {"Resources": {"Placeholder": parameter}}
        if outputs:
            template["Outputs"] = {key: {"Value": value} for key, value in outputs.items()}
        self.client("cloudformation", region).create_stack(
            StackName=name,
            TemplateBody=json.dumps(template),
            Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        )

    def iam_user(self, name: str, actions: list[str]) -> dict[str, str]:
        """A user allowed only `actions`; returns its keys for `clients(**keys)`."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=_allow(actions))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    def iam_role(self, name: str, actions: list[str], *, trusted: str) -> None:
        """A role that `trusted` (a principal ARN; moto matches it exactly) may assume, allowed only `actions`."""
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}]}
        iam = self.client("iam")
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName=name, PolicyName="only", PolicyDocument=_allow(actions))

    @contextmanager
    def iam_enforced(self) -> Iterator[None]:
        """Moto checks every request's signature and IAM policies (the server runs in this process)."""
        with enable_iam_authentication():
            yield


def _allow(actions: list[str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})


def moto_aws() -> MotoAws:
    aws = MotoAws(_server_url())
    aws.reset()
    return aws
