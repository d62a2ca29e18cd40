"""`make bench`: every benchmark, then bench/results.json, bench/report.md and bench/latency.png.

Each figure is the median of several runs, kept with its min and max (`spread`). The flat keys of
results.json hold the medians, and the ratios of figures to the references measured beside them in the
same run (`bench/targets.py`). The `agent` section also makes the quota load run (`bench/quota_run.py`),
kept under `quota`. Nothing here asserts: `make bench-check` compares the ratios with the targets.

    python -m bench.run [--quick] [--only binding,agent,identity,startup,memory,build]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench import agent, binding, build, identity, memory, quota_run, report, startup
from bench.targets import recorded, with_ratios

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results.json"
LATENCIES = BENCH_DIR / "tmp" / "latencies.json"
SECTIONS = ("binding", "agent", "identity", "startup", "memory", "build")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _binding(quick: bool, runs: int, spread: dict[str, Any], details: dict[str, Any], latencies: dict[str, list[float]]) -> None:
    figures = binding.measure([16, 64], runs, 2000 if quick else 6000)
    latencies.update(figures.pop("latencies"))
    details["binding"] = figures
    c16 = figures["c16"]
    spread["binding.completions_per_s"] = c16["binding"]["per_s"]
    spread["binding.p50_ms"] = c16["binding"]["p50_ms"]
    spread["binding.p99_ms"] = c16["binding"]["p99_ms"]
    spread["binding.bare_per_s"] = c16["bare"]["per_s"]
    spread["binding.bare_p99_ms"] = c16["bare"]["p99_ms"]
    spread["binding.c64_per_s"] = figures["c64"]["binding"]["per_s"]
    spread["binding.c64_p99_ms"] = figures["c64"]["binding"]["p99_ms"]


def _agent(quick: bool, runs: int, spread: dict[str, Any], details: dict[str, Any], latencies: dict[str, list[float]]) -> None:
    figures = agent.measure(100, runs, 1)
    latencies.update(figures.pop("latencies"))
    details["agent"] = figures
    for key in ("overhead_p50_ms", "overhead_p99_ms", "bare_p50_ms", "bare_p99_ms"):
        spread[f"agent.{key}"] = figures[key]
    spread["agent.workload_token_calls_per_100"] = figures["workload_token_calls_per_100"]
    spread["agent.outbound_token_calls_per_100"] = figures["outbound_token_calls_per_100"]
    details["quota"] = quota_run.measure(people=10 if quick else 50, chats_per_person=5 if quick else 10)


def run(sections: tuple[str, ...], quick: bool) -> tuple[dict[str, Any], dict[str, list[float]]]:
    cpus = len(os.sched_getaffinity(0))
    runs = 1 if quick else 3
    spread: dict[str, dict[str, float]] = {}
    details: dict[str, Any] = {}
    latencies: dict[str, list[float]] = {}

    if "binding" in sections:
        _binding(quick, runs, spread, details, latencies)
    if "identity" in sections:
        figures = identity.measure(runs=2 if quick else 5)
        details["identity"] = figures
        spread["identity.verify_warm_us"] = figures["verify_warm_us"]
        spread["identity.verify_cold_us"] = figures["verify_cold_us"]
    if "agent" in sections:
        _agent(quick, runs, spread, details, latencies)
    if "startup" in sections:
        figures = startup.measure(runs=2 if quick else 5)
        details["startup"] = figures
        for key, value in figures.items():
            spread[f"startup.{key}"] = value
    if "memory" in sections:
        figures = memory.measure(runs=1 if quick else 3, total=3000 if quick else 10_000)
        details["memory"] = figures
        for key in ("binding_peak_rss_mb", "binding_growth_mb", "agent_peak_rss_mb", "agent_growth_mb"):
            spread[f"memory.{key}"] = figures[key]
    if "build" in sections:
        figures = build.measure(synth_runs=1 if quick else 3, test_runs=1)
        details["build"] = figures
        spread["build.synth_s"] = figures["synth_s"]
        spread["build.test_s"] = figures["test_s"]

    results: dict[str, Any] = with_ratios({key: value["median"] for key, value in spread.items()})
    if "quota" in details:
        results["quota"] = details.pop("quota")
    results["spread"] = spread
    results["targets"] = recorded(results)
    results["machine"] = _machine(cpus, quick)
    results["details"] = details
    return results, latencies


def _machine(cpus: int, quick: bool) -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": cpus, "cpu_model": _cpu_model(), "date": time.strftime("%Y-%m-%d"), "quick": quick}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run each, fewer requests: for trying things, not for quoting")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = parser.parse_args()
    sections = tuple(s for s in args.only.split(",") if s)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    results, latencies = run(sections, args.quick)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    LATENCIES.parent.mkdir(exist_ok=True)
    LATENCIES.write_text(json.dumps(latencies) + "\n")
    report.write_report(results, latencies, BENCH_DIR)
    print((BENCH_DIR / "report.md").read_text())
    print(f"wrote {RESULTS}, {BENCH_DIR / 'report.md'}, {BENCH_DIR / 'latency.png'}")


if __name__ == "__main__":
    main()
