"""What a check returns, and the report: one line per check, a summary, and the exit code.

A check passes, fails with one line a person understands, or is skipped with the reason it could not
run (an input it lacks, a permission the caller does not have). The exit code is 0 only when
nothing failed: a skipped check is named in the report, never hidden, but does not fail the run
unless `strict` (`--strict`). In GitHub Actions each failed or skipped check is also an annotation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PASSED = "pass"
    FAILED = "FAIL"
    SKIPPED = "skip"


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    detail: str

    @property
    def line(self) -> str:
        return f"{self.status.value:<4}  {self.name:<30} {self.detail}"


def passed(name: str, detail: str) -> Result:
    return Result(name, Status.PASSED, detail)


def failed(name: str, reason: str) -> Result:
    return Result(name, Status.FAILED, reason)


def skipped(name: str, why: str) -> Result:
    return Result(name, Status.SKIPPED, why)


def summary(results: Sequence[Result]) -> str:
    counts = {status: sum(1 for r in results if r.status is status) for status in Status}
    return f"{counts[Status.PASSED]} passed, {counts[Status.FAILED]} failed, {counts[Status.SKIPPED]} skipped"


def render(where: str, results: Sequence[Result]) -> list[str]:
    """The report: where it ran, one line per check, then the counts."""
    return [f"Verified {where}:", *(r.line for r in results), "", summary(results)]


def exit_code(results: Sequence[Result], *, strict: bool = False) -> int:
    """1 when a check failed (or, strict, was skipped); else 0."""
    failing = {Status.FAILED, Status.SKIPPED} if strict else {Status.FAILED}
    return 1 if any(r.status in failing for r in results) else 0


def github_annotations(results: Sequence[Result]) -> list[str]:
    """GitHub Actions workflow commands: an error per failed check, a warning per skipped one."""
    kinds = {Status.FAILED: "error", Status.SKIPPED: "warning"}
    return [f"::{kinds[r.status]} title=make verify {r.name}::{r.detail}" for r in results if r.status in kinds]
