"""The command line of `make verify`: `python -m deploy.verify [--url URL ...] [cdk args]`.

Without `--url`, the deployed stacks' outputs are read with the caller's AWS credentials (region and
profile as `make deploy` takes them: `-c region=...`, `--profile`, or the environment). Prints one
line per check and a summary; exit code 0 when nothing failed, 1 when a check failed, 2 when the
inputs could not be read.

Against `make demo`: `make verify URL=http://127.0.0.1:8000` is enough. While the demo runs, it keeps the
rest of what the checks need (the emulator's endpoint and administrator keys, a demo user) in
`.demo/verify.args` (`DEMO_VERIFY_ARGS`), readable by you only; when that file names the same `--url`,
its arguments come first and the command line's after them.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from cdk_app.config import ConfigError
from deploy.aws_clients import AwsClients
from deploy.cdk_args import load_cli_config, parse_cdk_args
from deploy.outputs import OutputsError
from deploy.verify.checks import ALL_CHECKS, run_checks
from deploy.verify.report import exit_code, github_annotations, render
from deploy.verify.sources import Explicit, from_arguments, from_outputs, is_loopback
from deploy.verify.target import DEFAULT_QUESTION


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deploy.verify", allow_abbrev=False, description=__doc__.splitlines()[0])
    p.add_argument("--url", help="the public URL; without it, the stack outputs are read")
    p.add_argument("--region", help="the AWS region (default: -c region=..., else AWS_REGION or the profile's)")
    p.add_argument("--sign-in-issuer", help="the sign-in OIDC issuer (from the outputs: the sign-in user pool)")
    p.add_argument("--agentcore-endpoint", help="AgentCore Identity's endpoint (the local emulator); default AWS's")
    p.add_argument("--agentcore-access-key-id", help="with --agentcore-endpoint: the key id to sign with")
    p.add_argument("--agentcore-secret-access-key", help="with --agentcore-endpoint: its secret")
    p.add_argument("--workload-name", help="the workload identity (default: the config's)")
    p.add_argument("--provider-name", help="the OAuth2 credential provider (default: the first configured provider's)")
    p.add_argument("--state-param", help="the customState echo's parameter (default: binding_state_param)")
    p.add_argument("--client-id", help="the provider's client id (default: from the credential provider)")
    p.add_argument("--callback-url", help="AgentCore's callback URL (default: from the credential provider)")
    p.add_argument("--consent-issuer", help="the provider's issuer or discovery URL (default: from the credential provider)")
    p.add_argument("--scope", help="the scope of the callback check's authorization request (default: the provider's scopes)")
    p.add_argument("--user", help="a user at both issuers (default for a demo provider in an account: a temporary one)")
    p.add_argument("--password", help="that user's password")
    p.add_argument("--question", default=DEFAULT_QUESTION, help="what the consent check asks the agent")
    p.add_argument("--check", action="append", choices=ALL_CHECKS, default=[], help="run only this check (repeatable)")
    p.add_argument("--strict", action="store_true", help="a skipped check fails the run too")
    return p


DEMO_ARGS = Path(__file__).resolve().parents[2] / ".demo" / "verify.args"


def with_demo_arguments(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """`argv` after the running demo's arguments when they are for the same URL (see the module docstring)."""
    url = parser().parse_known_args(list(argv))[0].url
    path = Path(environ.get("DEMO_VERIFY_ARGS") or DEMO_ARGS)
    if url is None or not path.is_file():
        return list(argv)
    saved = [line for line in path.read_text().splitlines() if line]
    return [*saved, *argv] if f"--url={url.rstrip('/')}" in saved else list(argv)


def explicit(args: argparse.Namespace) -> Explicit:
    keys = (args.agentcore_access_key_id, args.agentcore_secret_access_key)
    return Explicit(
        url=args.url,
        sign_in_issuer=args.sign_in_issuer,
        agentcore_endpoint=args.agentcore_endpoint,
        agentcore_keys=keys if all(keys) else None,
        workload_name=args.workload_name,
        provider_name=args.provider_name,
        state_param=args.state_param,
        client_id=args.client_id,
        callback_url=args.callback_url,
        consent_issuer=args.consent_issuer,
        scope=args.scope,
        user=(args.user, args.password) if args.user and args.password else None,
        question=args.question,
    )


def main(argv: Sequence[str] | None = None, *, clients: AwsClients | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args, rest = parser().parse_known_args(with_demo_arguments(sys.argv[1:] if argv is None else argv, os.environ))
    cdk = parse_cdk_args(rest)
    given = explicit(args)
    try:
        config = load_cli_config(cdk)
        aws = clients
        # A URL on this machine is the local demo: never ask the environment's AWS account about it.
        if aws is None and (given.url is None or not (given.agentcore_endpoint or is_loopback(given.url))):
            aws = AwsClients.from_environment(profile=cdk.aws_profile, region=args.region or config.region, environ=os.environ)
        if given.url:
            target = from_arguments(given, config, aws, region=args.region)
        elif aws is None or aws.region is None:
            raise OutputsError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or pass --region")
        else:
            target = from_outputs(given, config, aws)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    except OutputsError as error:
        print(f"verify: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"verify: cannot read the stacks ({type(error).__name__}): {error}", file=sys.stderr)
        return 2
    results = run_checks(target, args.check)
    print("\n".join(render(target.where, results)), file=out)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print("\n".join(github_annotations(results)), file=out)
    return exit_code(results, strict=args.strict)


if __name__ == "__main__":
    # SIGTERM (a cancelled CI job) unwinds like Ctrl-C, so the temporary user is still deleted.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.exit(main())
