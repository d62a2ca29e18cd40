"""What to do after `cdk deploy`: `python -m deploy.outputs [cdk args]`.

Reads the deployed stacks' outputs (CloudFormation DescribeStacks through `AwsClients`) and prints
the agent URL, for each external provider the AgentCore callback URL to register there, and the exact
command that creates the first Cognito user.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from cdk_app.config import AppConfig, ConfigError, Provider, ProviderConfig
from cdk_app.naming import stack_name
from deploy.aws_clients import AwsClients
from deploy.cdk_args import load_cli_config, parse_cdk_args

# Where each vendor's console takes the redirect URI (AgentCore's callback URL).
CALLBACK_FIELD: Mapping[Provider, str] = {
    Provider.GITHUB: "GitHub > Settings > Developer settings > OAuth Apps > your app > Authorization callback URL",
    Provider.GOOGLE: "Google Cloud console > APIs & Services > Credentials > your OAuth client > Authorized redirect URIs",
    Provider.MICROSOFT: "Microsoft Entra admin center > App registrations > your app > Authentication > Web > Redirect URIs",
    Provider.SLACK: "api.slack.com/apps > your app > OAuth & Permissions > Redirect URLs",
    Provider.CUSTOM_OIDC: "your provider's client registration > redirect URIs",
}
# The demo authorization server's pool, inside the identity stack (construct path DemoAuthorizationServer/Pool).
DEMO_POOL_LOGICAL_ID_PREFIX = "DemoAuthorizationServer"


class OutputsError(Exception):
    """The stacks cannot be read. The message is one line saying what to do."""


@dataclass(frozen=True)
class DeployedOutputs:
    agent_url: str
    sign_in_user_pool_id: str
    callback_urls: Mapping[str, str]  # AgentCore's callback URL, by provider name
    demo_user_pool_id: str | None


@dataclass(frozen=True)
class StackOutputs:
    name: str
    status: str
    values: Mapping[str, str]

    def require(self, key: str) -> str:
        value = self.values.get(key)
        if not value:
            raise OutputsError(
                f"stack {self.name} has no output {key} (status {self.status}): run `make deploy` again and check its errors"
            )
        return value


def stack_outputs(clients: AwsClients, name: str) -> StackOutputs:
    try:
        stacks = clients.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            raise OutputsError(f"stack {name} not found in {clients.region}: deploy first (`make deploy` with the same ARGS)") from None
        raise
    stack = stacks[0]
    values = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}
    return StackOutputs(name=name, status=str(stack.get("StackStatus", "unknown")), values=values)


def demo_user_pool_id(clients: AwsClients, identity_stack: str) -> str | None:
    """The demo authorization server's pool id, from the identity stack's resources (it has no output of its own)."""
    paginator = clients.client("cloudformation").get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=identity_stack):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::Cognito::UserPool" and str(resource["LogicalResourceId"]).startswith(
                DEMO_POOL_LOGICAL_ID_PREFIX
            ):
                return str(resource.get("PhysicalResourceId") or "") or None
    return None


def read_outputs(clients: AwsClients, config: AppConfig) -> DeployedOutputs:
    services = stack_outputs(clients, stack_name(config, "services"))
    agent_identity = stack_outputs(clients, stack_name(config, "agent-identity"))
    agent_url = services.require("AgentUrl")
    sign_in_pool = services.require("SignInUserPoolId")
    callback_urls = {p.name: agent_identity.require(p.callback_url_output) for p in config.providers}
    demo_pool = None
    if config.demo_providers:
        try:
            demo_pool = demo_user_pool_id(clients, stack_name(config, "identity"))
        except ClientError:
            demo_pool = None  # a convenience only: the text then names the stack that holds the pool
    return DeployedOutputs(agent_url=agent_url, sign_in_user_pool_id=sign_in_pool, callback_urls=callback_urls, demo_user_pool_id=demo_pool)


def create_user_command(region: str, user_pool_id: str, email: str = "you@example.com") -> str:
    """Cognito emails the person a temporary password (the default delivery medium is SMS, hence EMAIL)."""
    return shlex.join(
        [
            "aws",
            "cognito-idp",
            "admin-create-user",
            "--region",
            region,
            "--user-pool-id",
            user_pool_id,
            "--username",
            email,
            "--user-attributes",
            f"Name=email,Value={email}",
            "Name=email_verified,Value=true",
            "--desired-delivery-mediums",
            "EMAIL",
        ]
    )


def callback_lines(provider: ProviderConfig, callback_url: str) -> list[str]:
    """What to do with AgentCore's callback URL of one provider: nothing for a demo one, else register it there."""
    label = f"Callback URL for {provider.display_name} ({provider.name})"
    if provider.is_demo:
        return [f"{label}: nothing to do: AgentCore's callback URL is registered at the demo authorization server automatically."]
    kind = provider.kind
    return [f"{label}: register this redirect URI at {kind.value} ({CALLBACK_FIELD[kind]}):", f"  {callback_url}"]


def render(config: AppConfig, region: str, outputs: DeployedOutputs) -> list[str]:
    lines = [
        f"Deployed {config.app_name} (profile {config.profile.value}) in {region}.",
        "",
        f"Agent URL: {outputs.agent_url}",
        "",
    ]
    for provider in config.providers:
        lines += callback_lines(provider, outputs.callback_urls[provider.name])
    lines += [
        "",
        "First user: create it in the sign-in user pool (Cognito emails a temporary password; use your own address):",
        f"  {create_user_command(region, outputs.sign_in_user_pool_id)}",
    ]
    if config.demo_providers:
        names = ", ".join(p.display_name for p in config.demo_providers)
        lines.append(
            f"Demo providers ({names}): create the same person at the demo authorization server (it stands in for the external services):"
        )
        if outputs.demo_user_pool_id:
            lines.append(f"  {create_user_command(region, outputs.demo_user_pool_id)}")
        else:
            lines.append(f"  its user pool is the DemoAuthorizationServer pool of stack {stack_name(config, 'identity')}")
    return lines


def main(argv: Sequence[str] | None = None, *, clients: AwsClients | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = parse_cdk_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_cli_config(args)
        aws = clients or AwsClients.from_environment(profile=args.aws_profile, region=config.region, environ=os.environ)
        if aws.region is None:
            raise OutputsError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or pass -c account=... -c region=...")
        outputs = read_outputs(aws, config)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    except OutputsError as error:
        print(f"outputs: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"outputs: cannot read the stacks ({type(error).__name__}): {error}", file=sys.stderr)
        return 2
    print("\n".join(render(config, aws.region, outputs)), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
