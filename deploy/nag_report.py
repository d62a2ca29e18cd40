"""Writes docs/security/nag-acknowledgements.md from the acknowledgements in the construct tree.

`python -m deploy.nag_report` (or `make nag-doc`) regenerates it; a test fails when it is stale.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from constructs import IConstruct

from app import build_stacks
from cdk_app.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "security" / "nag-acknowledgements.md"

_GITHUB = {
    "name": "github",
    "kind": "github",
    "display_name": "GitHub",
    "client_id": "Iv1.example",
    "client_secret_name": "agent/github-oauth",
}
_IDP = {
    "name": "idp",
    "kind": "custom-oidc",
    "display_name": "Company IdP",
    "client_id": "agent",
    "client_secret_name": "idp/agent",
    "discovery_url": "https://idp.example.org/.well-known/openid-configuration",
}
_NOTES = {"name": "notes", "kind": "demo", "display_name": "Demo Notes", "scopes": {"demo-api/notes.read": "Read your notes"}}
# Shapes of the app whose acknowledgements differ (labels as shown in the "when" column).
VARIANTS: Mapping[str, Mapping[str, Any]] = {
    "sandbox": {},
    "prod": {"profile": "prod"},
    "vendor provider": {"providers": json.dumps([_GITHUB])},
    "several providers": {"providers": json.dumps([_NOTES, _GITHUB, _IDP])},
    "waf_enabled=false": {"waf_enabled": "false"},
    "github_repository set": {"github_repository": "octo/agent"},
}

HEADER = """# cdk-nag acknowledgements

cdk-nag 3 runs the AwsSolutions and NIST 800-53 R5 packs as CDK validation plugins (`cdk_app/nag.py`).
Synth fails on any finding that is not acknowledged, warnings included. Each acknowledgement names one
rule id on the narrowest construct that needs it, beside the code that builds that construct
(`stacks/constructs/nag.py`). `tests/stacks/test_nag.py` checks that both packs report nothing for each
shape of the app in its `VARIANTS`, that no acknowledgement sits on a stack or on the app, and that this
file is current (regenerate with `make nag-doc`).

Fixed instead of acknowledged: public subnets do not map public IPs on launch; task-role permissions are
customer-managed policies naming exact ARNs; every log group is encrypted with a customer-managed key;
the demo client secret is copied with `GetAtt ClientSecret` rather than CDK's describe-client custom
resource; prod user pools use the Plus tier with threat protection; the prod ALB has deletion protection.

"when" says in which shape of the app the acknowledgement applies: *always*, only the *sandbox* profile,
or only with the named setting. Paths are construct paths (`cdk.out/tree.json`).

| rule | construct | when | reason |
|---|---|---|---|
"""


def _acknowledgements(node: IConstruct) -> Iterator[tuple[str, str, str]]:
    for entry in node.node.metadata:
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
            for qualified, reason in entry.data.items():
                rule = qualified.split("::", 1)[1] if qualified.lower().startswith("annotation::") else qualified
                if rule.startswith(("AwsSolutions-", "NIST.800.53.R5-")):
                    yield rule, node.node.path, reason
    for child in node.node.children:
        yield from _acknowledgements(child)


def collect() -> dict[tuple[str, str], tuple[str, set[str]]]:
    defaults = json.loads((ROOT / "cdk.json").read_text())["context"]
    rows: dict[tuple[str, str], tuple[str, set[str]]] = {}
    for label, overrides in VARIANTS.items():
        app = cdk.App(context={**defaults, **overrides}, outdir=tempfile.mkdtemp(prefix="nag-doc-"))
        build_stacks(app, load_config(app.node.get_all_context()))
        for rule, path, reason in _acknowledgements(app):
            rows.setdefault((rule, path), (reason, set()))[1].add(label)
    return rows


def _when(labels: set[str]) -> str:
    if {"sandbox", "prod"} <= labels:
        return "always"
    if "sandbox" in labels:
        return "sandbox"
    return ", ".join(sorted(labels))


def render() -> str:
    lines = [
        f"| `{rule}` | `{path}` | {_when(labels)} | {reason} |"
        for (rule, path), (reason, labels) in sorted(collect().items(), key=lambda item: (item[0][1], item[0][0]))
    ]
    return HEADER + "\n".join(lines) + "\n"


def main() -> None:
    DOC.write_text(render())
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
