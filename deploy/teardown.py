"""Around `cdk destroy`: `python -m deploy.teardown guard|leftovers [cdk args]`.

- `guard` refuses the `prod` profile unless CONFIRM_DESTROY_PROD=<app_name>-prod is set.
- `leftovers` lists what is still tagged `app=<app_name>`, `profile=<profile>` in the deployment
  region (Resource Groups Tagging API, through `AwsClients`). It exits 0 whether or not something
  is left: it informs, the destroy itself has already finished.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from cdk_app.config import AppConfig, ConfigError, load_config
from cdk_app.naming import stack_name
from deploy.aws_clients import AwsClients
from deploy.cdk_args import bootstrap_qualifier, cdk_context, parse_cdk_args

CONFIRM_VARIABLE = "CONFIRM_DESTROY_PROD"
_ACCESS_DENIED = ("AccessDenied", "AccessDeniedException", "403")
MAX_PAGE_SIZE = 100  # the Tagging API's largest page


def confirm_value(config: AppConfig) -> str:
    return f"{config.app_name}-prod"


def stack_names(config: AppConfig) -> list[str]:
    """What `cdk destroy --all` removes, in the order it does (reverse of deploy)."""
    roles = ["github-deploy"] if config.github_repository else []
    roles += ["services", "agent-identity", "identity", "network"]
    return [stack_name(config, role) for role in roles]


def guard(config: AppConfig, environ: Mapping[str, str], out: TextIO) -> int:
    """0 when the destroy may go ahead; 2 for an unconfirmed prod (one line saying how to confirm)."""
    stacks = ", ".join(stack_names(config))
    if not config.is_prod:
        print(f"teardown: destroying {stacks}", file=out)
        return 0
    expected = confirm_value(config)
    if environ.get(CONFIRM_VARIABLE) != expected:
        print(
            f"teardown: refusing to destroy profile prod: set {CONFIRM_VARIABLE}={expected} in the environment to confirm", file=sys.stderr
        )
        return 2
    print(f"teardown: {CONFIRM_VARIABLE} confirms destroying {stacks}; stateful resources are retained", file=out)
    print(
        "teardown: prod stacks have termination protection: turn it off first for each one with "
        "`aws cloudformation update-termination-protection --no-enable-termination-protection --stack-name <stack>`",
        file=out,
    )
    return 0


@dataclass(frozen=True)
class Leftover:
    arn: str

    @property
    def type(self) -> str:
        return resource_type(self.arn)


def resource_type(arn: str) -> str:
    """`service:resource-type` from an ARN, e.g. `logs:log-group`, `elasticloadbalancing:loadbalancer`, `s3:bucket`."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return "unknown"
    service, resource = parts[2], parts[5]
    segments = [s for s in re.split(r"[:/]", resource) if s]
    if service == "s3" and len(segments) == 1:
        return "s3:bucket"
    if service == "wafv2" and len(segments) > 1:
        return f"{service}:{segments[1]}"  # regional/webacl/<name>/<id>
    if service == "bedrock-agentcore" and len(segments) >= 4:
        # Nested paths such as token-vault/default/oauth2credentialprovider/<name>: the innermost type counts.
        return f"{service}:{segments[-2]}"
    return f"{service}:{segments[0]}" if len(segments) > 1 else service


def find_leftovers(clients: AwsClients, config: AppConfig, *, qualifier: str, page_size: int = MAX_PAGE_SIZE) -> list[Leftover]:
    """Everything tagged with this app and profile; as the bootstrap lookup role (read-only) if the caller may not list tags."""
    try:
        return _tagged(clients, config, page_size)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) not in _ACCESS_DENIED:
            raise
        return _tagged(clients.as_bootstrap_role("lookup", qualifier), config, page_size)


def _tagged(clients: AwsClients, config: AppConfig, page_size: int) -> list[Leftover]:
    paginator = clients.client("resourcegroupstaggingapi").get_paginator("get_resources")
    pages = paginator.paginate(
        TagFilters=[{"Key": "app", "Values": [config.app_name]}, {"Key": "profile", "Values": [config.profile.value]}],
        ResourcesPerPage=page_size,
    )
    arns = sorted({str(m["ResourceARN"]) for page in pages for m in page["ResourceTagMappingList"]})
    return [Leftover(arn) for arn in arns]


def report_leftovers(config: AppConfig, region: str, leftovers: Sequence[Leftover], out: TextIO) -> None:
    tags = f"app={config.app_name},profile={config.profile.value}"
    if not leftovers:
        print(f"teardown: nothing left tagged {tags} in {region}", file=out)
        return
    count = len(leftovers)
    print(f"WARNING: {count} resource{'s' if count != 1 else ''} still tagged {tags} in {region} (may still be billed):", file=out)
    width = max(len(item.type) for item in leftovers)
    for item in leftovers:
        print(f"  {item.type:<{width}}  {item.arn}", file=out)
    if config.is_prod:
        print(
            "teardown: profile prod retains stateful resources on purpose (user pools, secrets, keys, log groups, "
            "workload identity, credential provider): these are expected; delete them by hand only if you mean it",
            file=out,
        )
    else:
        print(
            "teardown: in sandbox nothing should remain; the Tagging API can list a deleted resource for a few minutes, "
            "so run this again later (`python -m deploy.teardown leftovers` with the same ARGS) before deleting by hand",
            file=out,
        )


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    clients: AwsClients | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    env = os.environ if environ is None else environ
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = arguments.pop(0) if arguments else ""
    if command not in ("guard", "leftovers"):
        print("usage: python -m deploy.teardown guard|leftovers [-c key=value ...]", file=sys.stderr)
        return 2
    args = parse_cdk_args(arguments)
    context = cdk_context(args.context)
    try:
        config = load_config(context)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    if command == "guard":
        return guard(config, env, out)

    try:
        aws = clients or AwsClients.from_environment(profile=args.aws_profile, region=config.region, environ=env)
        if aws.region is None:
            print("teardown: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or pass -c account=... -c region=...", file=sys.stderr)
            return 1
        leftovers = find_leftovers(aws, config, qualifier=bootstrap_qualifier(context))
    except (ClientError, BotoCoreError) as error:
        print(f"teardown: could not list leftovers ({type(error).__name__}): {error}", file=sys.stderr)
        return 1
    report_leftovers(config, aws.region, leftovers, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
