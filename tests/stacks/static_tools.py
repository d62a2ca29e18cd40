"""checkov and cfn-lint over synthesized assemblies, offline, reduced to one list of findings.

Each shape of the app (the cdk-nag variants) is synthesized in-process to its own temporary
directory, so the checks never depend on a previous `make synth`. Both tools run as subprocesses:
checkov from its own venv (its pins conflict with the project's), cfn-lint from the main one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from subprocess import PIPE
from typing import Any, cast

import aws_cdk as cdk
import pytest

from tests.stacks.conftest import ROOT, synth
from tests.stacks.test_nag import VARIANTS

SHAPES: dict[str, tuple[tuple[str, Any], ...]] = dict(VARIANTS)
DOCKERFILES = tuple(
    sorted(p.relative_to(ROOT).as_posix() for pattern in ("Dockerfile*", "*/Dockerfile*") for p in (ROOT / "services").glob(pattern))
)
DEFAULT_CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")

# checkov: local policies only. `--skip-download` stops every platform call (policy metadata, custom
# policies, suppressions); the environment below turns off guideline mapping and the PyPI version check
# and drops any API key that would switch on the platform integration.
CHECKOV_ENV = {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE"}
PLATFORM_VARIABLES = ("BC_API_KEY", "PRISMA_API_URL", "BC_API_URL", "CKV_API_KEY", "PRISMA_ACCESS_KEY", "PRISMA_SECRET_KEY")


@dataclass(frozen=True)
class Finding:
    tool: str  # "checkov" | "cfn-lint"
    check: str
    resource: str  # construct path (templates) or repository path (Dockerfiles)
    shape: str  # a SHAPES key, or "dockerfile"
    message: str

    def __str__(self) -> str:
        return f"{self.tool} {self.check} {self.resource} [{self.shape}]: {self.message}"


@dataclass(frozen=True)
class Counts:
    passed: int
    failed: int
    resources: int


def require_tool(path: Path, name: str) -> Path:
    """The tool's path; a missing tool skips, or fails under REQUIRE_STATIC_TOOLS=1 (`make unit`)."""
    if path.is_file() and os.access(path, os.X_OK):
        return path
    message = f"{name} not found at {path}: run `make static-tools` (checkov) or `make install` (cfn-lint)"
    if os.environ.get("REQUIRE_STATIC_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def checkov_path() -> Path:
    return require_tool(Path(os.environ.get("CHECKOV", DEFAULT_CHECKOV)).absolute(), "checkov")


@cache
def _network_namespace_available() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False).returncode == 0


def offline(command: list[str]) -> list[str]:
    """Run in a fresh network namespace (loopback only) where the kernel allows it: proof, not trust."""
    return ["unshare", "-rn", *command] if _network_namespace_available() else command


def tool_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PLATFORM_VARIABLES and not k.startswith("AWS_")}
    env.update(extra or {})
    return env


@cache
def assembly(shape: str) -> Path:
    """The cloud assembly directory of one shape, written by an in-process synth."""
    return Path(synth(SHAPES[shape]).app.synth().directory)


def templates(shape: str) -> list[Path]:
    return sorted(assembly(shape).glob("*.template.json"))


@cache
def _construct_paths(shape: str) -> dict[tuple[str, str], str]:
    """(template file name, logical id) -> construct path, from the app's construct tree."""
    paths: dict[tuple[str, str], str] = {}
    for construct in synth(SHAPES[shape]).app.node.find_all():
        if cdk.CfnElement.is_cfn_element(construct):
            element = cast(cdk.CfnElement, construct)
            stack = element.stack
            paths[(stack.template_file, str(stack.resolve(element.logical_id)))] = element.node.path
    return paths


def construct_path(shape: str, template_file: Path, logical_id: str) -> str:
    """`Services/Ingress/SecurityGroup/Resource` for a resource, `Services/SignInUserPoolId` for an output."""
    return _construct_paths(shape).get((template_file.name, logical_id), f"{template_file.name}/{logical_id}")


def _checkov_reports(raw: str) -> list[dict[str, Any]]:
    loaded = json.loads(raw)
    return loaded if isinstance(loaded, list) else [loaded]


@dataclass(frozen=True)
class Scan:
    """What one run of both tools over every shape found."""

    findings: list[Finding]
    checkov_counts: dict[str, Counts]
    cfn_lint_rules: int
    templates_scanned: int
    on_control: list[Finding]  # findings on the planted control template


def unique_templates() -> dict[Path, list[tuple[str, Path]]]:
    """Templates of every shape, grouped by content: each distinct template is scanned once."""
    groups: dict[str, list[tuple[str, Path]]] = {}
    for shape in SHAPES:
        for template in templates(shape):
            digest = hashlib.sha256(template.read_bytes()).hexdigest()
            groups.setdefault(digest, []).append((shape, template))
    return {copies[0][1]: copies for copies in groups.values()}


def _checkov_command(files: list[Path]) -> list[str]:
    checkov = checkov_path()
    flags = ["--skip-download", "--framework", "cloudformation", "dockerfile", "--output", "json", "--compact", "--quiet"]
    return offline([str(checkov), *flags, "--file", *(str(f) for f in files)])


def _cfn_lint_command(files: list[Path]) -> list[str]:
    cfn_lint = require_tool(CFN_LINT, "cfn-lint")
    return offline([str(cfn_lint), "--format", "json", "--", *(str(f) for f in files)])


def scan(control: Path) -> Scan:
    """checkov (templates and Dockerfiles) and cfn-lint (templates), side by side, over every shape."""
    groups = unique_templates()
    files = [*groups, control]
    dockerfiles = [ROOT / d for d in DOCKERFILES]
    checkov = subprocess.Popen(
        _checkov_command([*files, *dockerfiles]), cwd=ROOT, env=tool_environment(CHECKOV_ENV), stdout=PIPE, stderr=PIPE, text=True
    )
    cfn_lint = subprocess.Popen(_cfn_lint_command(files), cwd=ROOT, env=tool_environment(), stdout=PIPE, stderr=PIPE, text=True)
    checkov_out, checkov_err = checkov.communicate(timeout=300)
    lint_out, lint_err = cfn_lint.communicate(timeout=300)
    # checkov exits 1 when a check failed; cfn-lint's exit code is a bit mask (2 error, 4 warning, 8 info; 1 crash).
    assert checkov.returncode in (0, 1), f"checkov crashed ({checkov.returncode}): {checkov_err[-2000:]}"
    assert cfn_lint.returncode & 1 == 0 and lint_out.lstrip().startswith("["), (
        f"cfn-lint failed ({cfn_lint.returncode}): {lint_err[-2000:]}"
    )

    findings: list[Finding] = []
    on_control: list[Finding] = []
    counts: dict[str, Counts] = {}

    def record(tool: str, check: str, file_path: Path, logical_id: str, message: str) -> None:
        if file_path == control:
            on_control.append(Finding(tool, check, logical_id, "control", message))
        elif file_path in groups:
            for shape, copy in groups[file_path]:
                findings.append(Finding(tool, check, construct_path(shape, copy, logical_id), shape, message))
        else:
            findings.append(Finding(tool, check, file_path.relative_to(ROOT).as_posix(), "dockerfile", message))

    for report in _checkov_reports(checkov_out):
        summary = report["summary"]
        assert summary["parsing_errors"] == 0, f"checkov could not parse: {report['results'].get('parsing_errors')}"
        for result in report["results"]["failed_checks"]:
            logical_id = str(result["resource"]).split(".", 1)[1] if report["check_type"] == "cloudformation" else ""
            record("checkov", result["check_id"], Path(result["file_abs_path"]), logical_id, result["check_name"])
        counts[report["check_type"]] = Counts(passed=summary["passed"], failed=summary["failed"], resources=summary["resource_count"])
    for match in json.loads(lint_out):
        location = match["Location"]["Path"] or []
        logical_id = str(location[1]) if len(location) > 1 else "<template>"
        record("cfn-lint", match["Rule"]["Id"], (ROOT / match["Filename"]).resolve(), logical_id, match["Message"])
    return Scan(findings, counts, cfn_lint_rule_count(), len(groups), on_control)


@cache
def cfn_lint_rule_count() -> int:
    """Rules cfn-lint applies by default (errors and warnings; informational rules are opt-in)."""
    done = subprocess.run([str(CFN_LINT), "--list-rules"], capture_output=True, text=True, check=True)
    return len(set(re.findall(r"^([EW]\d{4}):", done.stdout, flags=re.MULTILINE)))


def tool_version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return done.stdout.strip().split()[-1]
