"""checkov and cfn-lint on every shape's synthesized templates (and checkov on the Dockerfiles), offline.

Every finding is either fixed in stacks/ or skipped in tests/stacks/static_skips.py with a reason;
docs/security/static-analysis.md shows the same list. cdk-nag runs in tests/stacks/test_nag.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.stacks import static_skips
from tests.stacks.static_skips import SKIPS
from tests.stacks.static_tools import DOCKERFILES, SHAPES, Finding, Scan, scan

# A template each tool must find fault with: an unencrypted, unlogged bucket with an unknown property.
CONTROL = {"Resources": {"Plain": {"Type": "AWS::S3::Bucket", "Properties": {"NoSuchProperty": True}}}}


@pytest.fixture(scope="session")  # session: pytest may order another module's tests between these, and a scan takes 30 s
def results(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    control = tmp_path_factory.mktemp("control") / "Control.template.json"
    control.write_text(json.dumps(CONTROL))
    return scan(control)


def _unskipped(findings: list[Finding]) -> list[str]:
    return sorted({str(f) for f in findings if not any(s.covers(f.tool, f.check, f.resource, f.shape) for s in SKIPS)})


def test_tools_ran_and_catch_a_planted_violation(results: Scan) -> None:
    """Control: a clean report means something only if the same run reports the planted template."""
    checkov_on_control = {f.check for f in results.on_control if f.tool == "checkov"}
    assert {"CKV_AWS_18", "CKV_AWS_21"} <= checkov_on_control  # no access logging, no versioning
    assert "E3002" in {f.check for f in results.on_control if f.tool == "cfn-lint"}  # unknown property
    assert set(results.checkov_counts) == {"cloudformation", "dockerfile"}
    assert results.checkov_counts["cloudformation"].passed > 500
    assert DOCKERFILES == ("services/Dockerfile",)  # one parameterised Dockerfile for every Python service
    assert results.checkov_counts["dockerfile"].resources == len(DOCKERFILES)
    assert results.cfn_lint_rules > 100
    assert results.templates_scanned >= len(SHAPES)


def test_checkov_has_no_unskipped_findings(results: Scan) -> None:
    assert _unskipped([f for f in results.findings if f.tool == "checkov"]) == []


def test_cfn_lint_has_no_unskipped_findings(results: Scan) -> None:
    assert _unskipped([f for f in results.findings if f.tool == "cfn-lint"]) == []


def test_every_skip_still_matches_a_finding(results: Scan) -> None:
    """A skip whose finding was fixed (or whose resource was renamed) goes, so the list stays true."""
    for skip in SKIPS:
        for pattern in skip.resources:
            narrowed = replace(skip, resources=(pattern,))
            assert any(narrowed.covers(f.tool, f.check, f.resource, f.shape) for f in results.findings), (
                f"stale skip: {skip.tool} {skip.check} {pattern} matches no finding"
            )


def test_skips_have_reasons_and_no_blanket_resources() -> None:
    for skip in SKIPS:
        assert skip.tool in ("checkov", "cfn-lint")
        assert len(skip.reason) > 60, f"{skip.check}: a reason a reviewer can check"
        assert skip.resources and all(r not in ("*", "**") for r in skip.resources), f"{skip.check}: name the resources"
        assert set(skip.shapes) <= set(SHAPES), f"{skip.check}: unknown shape in {skip.shapes}"


def test_document_lists_every_skip() -> None:
    """docs/security/static-analysis.md is current (regenerate with `python -m tests.stacks.static_skips`)."""
    assert static_skips.current_table(static_skips.DOC.read_text()) == static_skips.render()


def test_document_names_the_pinned_versions() -> None:
    root = Path(__file__).resolve().parents[2]
    doc = static_skips.DOC.read_text()
    checkov = next(line for line in (root / "requirements-checkov.txt").read_text().splitlines() if line.startswith("checkov=="))
    cfn_lint = next(line for line in (root / "requirements-dev.txt").read_text().splitlines() if line.startswith("cfn-lint=="))
    assert checkov.split("==")[1] in doc and cfn_lint.split("==")[1] in doc
