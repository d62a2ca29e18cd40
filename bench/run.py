"""`make bench`: run the benchmarks and write bench/results.json and a table on stdout.

Today: the session binding benchmark (bench/binding.py). Keys in results.json are medians of
several runs; each figure also keeps its min and max.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from bench import binding

RESULTS = Path(__file__).resolve().parent / "results.json"
TARGETS = {"binding.completions_per_s": (">=", 1000.0), "binding.p99_ms": ("<=", 25.0)}


def run(runs: int, requests: int) -> dict[str, Any]:
    figures = binding.measure([16, 64], runs, requests)
    c16 = figures["c16"]
    results: dict[str, Any] = {
        "binding.completions_per_s": c16["binding"]["per_s"]["median"],
        "binding.p50_ms": c16["binding"]["p50_ms"]["median"],
        "binding.p99_ms": c16["binding"]["p99_ms"]["median"],
        "binding.bare_per_s": c16["bare"]["per_s"]["median"],
        "binding.ratio_to_bare": c16["ratio_to_bare"],
        "details": {"binding": figures},
        "machine": {
            "python": platform.python_version(),
            "cpus": len(__import__("os").sched_getaffinity(0)),
            "date": time.strftime("%Y-%m-%d"),
        },
    }
    return results


def table(results: dict[str, Any]) -> str:
    figures = results["details"]["binding"]
    lines = [
        "| endpoint | clients | per s (median, min-max) | p50 ms | p99 ms (median, min-max) | bare FastAPI per s | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted(k for k in figures if k.startswith("c")):
        b, bare = figures[key]["binding"], figures[key]["bare"]
        lines.append(
            f"| /oauth2/session-binding | {key[1:]} | {b['per_s']['median']:.0f} ({b['per_s']['min']:.0f}-{b['per_s']['max']:.0f}) "
            f"| {b['p50_ms']['median']:.1f} | {b['p99_ms']['median']:.1f} ({b['p99_ms']['min']:.1f}-{b['p99_ms']['max']:.1f}) "
            f"| {bare['per_s']['median']:.0f} | {figures[key]['ratio_to_bare']:.3f} |"
        )
    for key, (op, target) in TARGETS.items():
        value = results[key]
        met = value >= target if op == ">=" else value <= target
        lines.append(f"\n{key} = {value} (target {op} {target}: {'met' if met else 'NOT met'})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=6000)
    args = parser.parse_args()
    results = run(args.runs, args.requests)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
