"""`make bench-check`: compare bench/results.json with the targets and print the verdict.

Every target is a ratio to a reference measured in the same run (or a count, which needs none:
`bench/targets.py`), so the verdict means the same on any machine. Each line shows the measured ratio
and its target, then the absolute figure and its reference beside them, for information.

Informational by default (exit 0), so CI can print it; `--strict` exits 1 when a target is not met
or was not measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.run import RESULTS
from bench.targets import RATIO_BY_KEY, Verdict, verdicts


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def verdict_lines(results: Mapping[str, Any]) -> tuple[list[str], int]:
    """The verdict table, and how many targets were not met or not measured."""
    judged: list[Verdict] = verdicts(results)
    lines = [f"{'target':36} {'measured':>9} {'target':>10}  {'figure':>10} {'reference':>10}  verdict"]
    for v in judged:
        r = RATIO_BY_KEY.get(v.target.key)
        goal = f"{v.target.op} {v.target.value:g}"
        beside = f"{_figure(v.figure):>10} {_figure(v.reference):>10}" if r else f"{'(count)':>10} {'':>10}"
        lines.append(f"{v.target.key:36} {_figure(v.measured):>9} {goal:>10}  {beside}  {v.word}")
    lines.append("")
    for v in judged:
        r = RATIO_BY_KEY.get(v.target.key)
        if r:
            fastest = " (the fastest run of each)" if r.statistic == "min" else ""
            lines.append(f"{v.target.key} = {r.figure} / {r.reference}{fastest}")
    failing = sum(v.met is not True for v in judged)
    quick = results.get("machine", {}).get("quick") if isinstance(results.get("machine"), Mapping) else None
    lines.append(f"\n{len(judged) - failing} of {len(judged)} targets met" + (" (quick run: not for quoting)" if quick else ""))
    return lines, failing


def main(argv: Sequence[str] | None = None, results_path: Path = RESULTS) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args(argv)
    if not results_path.exists():
        print(f"no {results_path}: run `make bench` first", file=sys.stderr)
        return 1 if args.strict else 0
    results = json.loads(results_path.read_text())
    lines, failing = verdict_lines(results if isinstance(results, dict) else {})
    print("\n".join(lines))
    return 1 if args.strict and failing else 0


if __name__ == "__main__":
    sys.exit(main())
