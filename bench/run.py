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

from bench import agent, binding

RESULTS = Path(__file__).resolve().parent / "results.json"
TARGETS = {
    "binding.completions_per_s": (">=", 1000.0),
    "binding.p99_ms": ("<=", 25.0),
    "agent.workload_token_calls_per_100": ("<=", 2.0),
}


def run(runs: int, requests: int) -> dict[str, Any]:
    figures = binding.measure([16, 64], runs, requests)
    agent_figures = agent.measure(100, runs, 1)
    c16 = figures["c16"]
    results: dict[str, Any] = {
        "binding.completions_per_s": c16["binding"]["per_s"]["median"],
        "binding.p50_ms": c16["binding"]["p50_ms"]["median"],
        "binding.p99_ms": c16["binding"]["p99_ms"]["median"],
        "binding.bare_per_s": c16["bare"]["per_s"]["median"],
        "binding.ratio_to_bare": c16["ratio_to_bare"],
        "agent.overhead_p50_ms": agent_figures["overhead_p50_ms"]["median"],
        "agent.overhead_p99_ms": agent_figures["overhead_p99_ms"]["median"],
        "agent.workload_token_calls_per_100": agent_figures["workload_token_calls_per_100"]["median"],
        "agent.outbound_token_calls_per_100": agent_figures["outbound_token_calls_per_100"]["median"],
        "details": {"binding": figures, "agent": agent_figures},
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
    a = results["details"]["agent"]
    lines += [
        "",
        "| agent, one consented user, 100 sequential chats | median | min-max |",
        "|---|---|---|",
        f"| overhead p50 ms (2 Converse calls, 1 tool call, SSE) | {a['overhead_p50_ms']['median']} | {a['overhead_p50_ms']['min']}-{a['overhead_p50_ms']['max']} |",
        f"| overhead p99 ms | {a['overhead_p99_ms']['median']} | {a['overhead_p99_ms']['min']}-{a['overhead_p99_ms']['max']} |",
        f"| GetWorkloadAccessTokenForUserId per 100 chats | {a['workload_token_calls_per_100']['median']} | {a['workload_token_calls_per_100']['min']}-{a['workload_token_calls_per_100']['max']} |",
        f"| GetResourceOauth2Token per 100 chats | {a['outbound_token_calls_per_100']['median']} | {a['outbound_token_calls_per_100']['min']}-{a['outbound_token_calls_per_100']['max']} |",
        f"| workload-token calls for all {a['total_requests']} chats of the user, consent included | {a['workload_token_calls_total']} | |",
    ]
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
