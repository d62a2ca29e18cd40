"""Synthesized templates of every shape of the app, to show that a change leaves them byte-identical.

`python -m tools.templates write DIR` synthesizes each shape below with `app.build_stacks` (no cdk-nag, as the tests
do) and writes `DIR/<shape>/<stack name>.json` (sorted keys, indent 1). `python -m tools.templates compare A B`
compares two such trees (or two `cdk.out` directories, with `--glob '*.template.json'`) with the container image
asset hashes masked: those cover the contents of `services/`, which may change without the infrastructure changing.
Every other difference is printed, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROD = {"profile": "prod"}
GITHUB_PROVIDER = {
    "name": "github",
    "kind": "github",
    "display_name": "GitHub",
    "client_id": "Iv1.0123456789abcdef",
    "client_secret_name": "agent/github-oauth",
}
IDP_PROVIDER = {
    "name": "idp",
    "kind": "custom-oidc",
    "display_name": "Company IdP",
    "client_id": "agent",
    "client_secret_name": "idp/agent",
    "discovery_url": "https://idp.example.org/.well-known/openid-configuration",
}
# revoke_on_disconnect on: the agent's PROVIDERS entry gains `revoke`, its role a read of that client secret.
REVOKING_GITHUB_PROVIDER = {**GITHUB_PROVIDER, "revoke_on_disconnect": True}
REVOKING_IDP_PROVIDER = {**IDP_PROVIDER, "revoke_on_disconnect": True, "revocation_url": "https://idp.example.org/oauth2/revoke"}
NOTES_PROVIDER = {"name": "notes", "kind": "demo", "display_name": "Demo Notes", "scopes": {"demo-api/notes.read": "Read your notes"}}
GITHUB = {"providers": json.dumps([GITHUB_PROVIDER])}
CERT = {
    "hosted_zone_id": "",
    "hosted_zone_name": "",
    "certificate_arn": "arn:aws:acm:eu-west-1:111122223333:certificate/12345678-1234-1234-1234-123456789012",
}
CUSTOM_OIDC = {"providers": json.dumps([IDP_PROVIDER]), "bedrock_model_id": "anthropic.claude-3-5-haiku-20241022-v1:0"}
TUNED = {
    "alarm_email": "ops@example.com",
    "alarm_refusals_per_5min": "7",
    "metrics_namespace": "Team/Agent",
    "agent_min_tasks": "3",
    "agent_max_tasks": "9",
    "binding_max_tasks": "4",
}
# Context overrides on top of cdk.json, one per shape of the app whose templates differ.
SHAPES: Mapping[str, Mapping[str, str]] = {
    "demo-sandbox": {},
    "demo-prod": PROD,
    "github": GITHUB,
    "certificate-no-waf": {**CERT, "waf_enabled": "false"},
    "pinned-environment": {"account": "111122223333", "region": "eu-west-1"},
    "github-deploy-role": {"github_repository": "octo/agent", "github_deploy_branch": "release/v1"},
    "binding-on-lambda": {"binding_compute": "lambda"},
    "binding-on-lambda-prod": {**PROD, "binding_compute": "lambda"},
    "custom-oidc-plain-model": CUSTOM_OIDC,
    "email-tuned": TUNED,
    "relaxed-state": {"binding_require_state": "false", "binding_state_param": "custom_state"},
    "narrow-us-east-1": {"allowed_ingress_cidrs": "203.0.113.0/24", "account": "111122223333", "region": "us-east-1"},
    "same-user": {"binding_mode": "same-user"},
    "three-providers": {"providers": json.dumps([NOTES_PROVIDER, GITHUB_PROVIDER, IDP_PROVIDER])},
    "three-providers-revoking": {"providers": json.dumps([NOTES_PROVIDER, REVOKING_GITHUB_PROVIDER, REVOKING_IDP_PROVIDER])},
}
# A container image asset's hash: in the ECR image URI (`...container-assets-<account>-<region>:<hash>`), or in
# the name of an asset parameter (legacy synthesizer).
IMAGE_HASH = re.compile(r"(container-assets-[^\"\s]*?:|AssetParameters)[0-9a-f]{64}")


def write(out: Path) -> None:
    # Imported here: aws_cdk starts a Node process, which `compare` does not need.
    import aws_cdk as cdk  # noqa: PLC0415

    from app import build_stacks  # noqa: PLC0415
    from cdk_app.config import load_config  # noqa: PLC0415

    defaults: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    for shape, overrides in SHAPES.items():
        app = cdk.App(context={**defaults, **overrides}, outdir=tempfile.mkdtemp(prefix="templates-"))
        build_stacks(app, load_config(app.node.get_all_context()))
        directory = out / shape
        directory.mkdir(parents=True, exist_ok=True)
        for stack in app.synth().stacks:
            (directory / f"{stack.stack_name}.json").write_text(json.dumps(stack.template, indent=1, sort_keys=True) + "\n")
        print(shape, file=sys.stderr)


def mask(text: str) -> str:
    return IMAGE_HASH.sub(lambda match: match.group(1) + "<image-hash>", text)


def compare(before: Path, after: Path, pattern: str) -> list[str]:
    """Every difference between the two trees once image hashes are masked: missing files and unified diffs."""
    names = sorted({p.relative_to(before) for p in before.glob(pattern)} | {p.relative_to(after) for p in after.glob(pattern)})
    problems: list[str] = []
    for name in names:
        old, new = before / name, after / name
        if not (old.is_file() and new.is_file()):
            problems.append(f"only in {before if old.is_file() else after}: {name}")
            continue
        old_text, new_text = mask(old.read_text()), mask(new.read_text())
        if old_text != new_text:
            diff = difflib.unified_diff(old_text.splitlines(), new_text.splitlines(), f"{before}/{name}", f"{after}/{name}", lineterm="")
            problems.append("\n".join(diff))
    if not names:
        problems.append(f"no files matching {pattern!r} in {before} or {after}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.templates", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("write", help="synthesize every shape into DIR").add_argument("dir", type=Path)
    diff = commands.add_parser("compare", help="compare two trees with image asset hashes masked")
    diff.add_argument("before", type=Path)
    diff.add_argument("after", type=Path)
    diff.add_argument("--glob", default="**/*.json", help="which files to compare (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "write":
        write(args.dir)
        return 0
    problems = compare(args.before, args.after, args.glob)
    for problem in problems:
        print(problem)
    compared = len(list(args.before.glob(args.glob)))
    print(f"{compared} files compared, {len(problems)} differ (image asset hashes masked)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
