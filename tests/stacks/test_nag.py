"""cdk-nag AwsSolutions and NIST 800-53 R5: zero unacknowledged findings, in every shape of the app."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

from cdk_app.nag import nag_packs
from deploy import nag_report
from tests.stacks.conftest import CERT, GITHUB, IDP_PROVIDER, PROD, ROOT, THREE, THREE_REVOKING, Synth, providers, synth

VARIANTS = {
    "demo-sandbox": (),
    "demo-prod": PROD,
    "github": GITHUB,
    "certificate-no-waf": (*CERT, ("waf_enabled", "false")),
    "pinned-environment": (("account", "111122223333"), ("region", "eu-west-1")),
    "github-deploy-role": (("github_repository", "octo/agent"), ("github_deploy_branch", "release/v1")),
    "binding-on-lambda": (("binding_compute", "lambda"),),
    "binding-on-lambda-prod": (*PROD, ("binding_compute", "lambda")),
    "custom-oidc-plain-model": (*providers(IDP_PROVIDER), ("bedrock_model_id", "anthropic.claude-3-5-haiku-20241022-v1:0")),
    # A demo provider, a vendor and a custom OIDC provider at once: several credential providers, secrets and grants.
    "three-providers": THREE,
    # The same with revoke_on_disconnect on for GitHub and the custom OIDC provider: the agent reads those secrets itself.
    "three-providers-revoking": THREE_REVOKING,
}


def _findings(app: cdk.App) -> list[str]:
    found = []
    for pack in nag_packs(app):
        report = pack.validate_scope(app)
        for violation in report.violations:
            paths = [r.construct_path for r in violation.violating_resources]
            found.append(f"{violation.rule_name} {paths}")
    return found


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_no_unacknowledged_findings(overrides: tuple[tuple[str, str], ...]) -> None:
    assert _findings(synth(overrides).app) == []


def test_the_packs_do_catch_a_violation() -> None:
    """Control: an unencrypted, unlogged bucket is reported, so a clean report means something."""
    app = cdk.App()
    stack = cdk.Stack(app, "Control")
    s3.CfnBucket(stack, "Plain")
    findings = _findings(app)
    assert any(f.startswith("AwsSolutions-S10") for f in findings)
    assert any(f.startswith("NIST.800.53.R5-S3BucketLoggingEnabled") for f in findings)


def test_acknowledgement_document_is_current() -> None:
    """docs/security/nag-acknowledgements.md is generated from the construct tree; regenerate with `make nag-doc`."""
    assert nag_report.DOC.read_text() == nag_report.render()


def test_every_acknowledgement_in_the_code_is_documented() -> None:
    doc = nag_report.DOC.read_text()
    code = "\n".join(p.read_text() for p in (ROOT / "stacks").rglob("*.py"))
    acknowledged = set(re.findall(r'"((?:AwsSolutions|NIST\.800\.53\.R5)-[A-Za-z0-9]+)', code))
    assert acknowledged, "expected acknowledgements in stacks/"
    missing = sorted(rule for rule in acknowledged if rule not in doc)
    assert missing == []


def test_acknowledgements_are_not_blanket(demo: Synth) -> None:
    """No acknowledgement sits on a stack or the app: each names a resource-level construct."""

    def nag_acknowledgements(construct: cdk.App | cdk.Stack) -> list[str]:
        return [
            rule
            for m in construct.node.metadata
            if m.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
            for rule in m.data
            if "AwsSolutions" in rule or "NIST" in rule
        ]

    for stack in (demo.stacks.network, demo.stacks.identity, demo.stacks.agent_identity, demo.stacks.services):
        assert nag_acknowledgements(stack) == [], f"stack-wide acknowledgement on {stack.node.path}"
    assert nag_acknowledgements(demo.app) == []


def test_synth_with_plugins_writes_no_report_when_clean(tmp_path: Path) -> None:
    """The same path app.py takes: Validations plugins run at synth and pass."""
    from app import build_stacks
    from cdk_app.config import load_config
    from tests.stacks.conftest import context_with

    app = cdk.App(context=context_with(), outdir=str(tmp_path))
    build_stacks(app, load_config(app.node.get_all_context()))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app))
    app.synth()  # raises ValidationFailed on any finding
    report = tmp_path / "validation-report.json"
    if report.exists():
        assert json.loads(report.read_text())["pluginReports"] == []
