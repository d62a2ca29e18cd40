"""`make bench-check`'s targets: each figure judged against a reference measured in the same run.

An absolute figure (completions per second, milliseconds to import) says as much about the machine as
about the code: the same code reads 620/s on one machine and 1,000/s on another. So every target here is
one of two kinds, and means the same on any machine:

* a **ratio**: a figure over its reference, both measured in the same run, on the same core, under the
  same load (`RATIOS`; each benchmark module says why its reference is the comparable minimum);
* a **count**: AgentCore calls per 100 chats. A count is what the code decides to do (call, or reuse
  what it holds), not how fast the machine does it, so it needs no reference. It would only change with
  the machine if a run outlasted a cached token's reuse time (minutes; a run takes seconds).

The absolute figures stay in results.json and the report, for information, beside each ratio.
Each threshold is the ratio measured on this project's 2-core machine when it was set, with a margin that
run-to-run noise on a quiet machine stays inside but a real regression crosses: 25% for latency and
start-up, 20% for throughput; memory growth, near zero when it was set, is held to a fixed fraction of the
peak instead (a leak of a few hundred bytes per request crosses it). Its `basis` says which run it comes from (the binding figures from the
last full `make bench` on a quiet machine; the others, new in that form, from runs of their benchmark
modules on 2026-12-07). A ratio still moves when other work shares the machine (a service making several
calls between processes waits more often than a bare endpoint making none), so the figures to quote come
from a quiet machine, as ever.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Ratio:
    """`key` = `figure` / `reference`, both keys of results.json measured in the same run.

    `statistic` says which run of each is divided: "median" (the flat keys) for figures that are already
    percentiles over hundreds of requests; "min" (the fastest run, from "spread") for figures that are one
    event per run, such as a process start, where a burst of other work on the machine lands whole on one
    sample: contention can make a run slower, never faster, so the fastest run is the stable one (as
    `timeit` reports).
    """

    key: str
    figure: str
    reference: str
    statistic: Literal["median", "min"] = "median"


RATIOS: tuple[Ratio, ...] = (
    # Session binding at 16 clients beside a bare FastAPI page, same core, batches interleaved (bench/binding.py).
    Ratio("binding.ratio_to_bare", "binding.completions_per_s", "binding.bare_per_s"),
    Ratio("binding.p99_to_bare", "binding.p99_ms", "binding.bare_p99_ms"),
    # The agent's chat beside a bare FastAPI stream of the same events, same core, interleaved (bench/agent.py).
    Ratio("agent.p50_to_bare", "agent.overhead_p50_ms", "agent.bare_p50_ms"),
    Ratio("agent.p99_to_bare", "agent.overhead_p99_ms", "agent.bare_p99_ms"),
    # Start-up beside `import fastapi` and a bare uvicorn app, each run in turn (bench/startup.py).
    Ratio("startup.import_to_fastapi", "startup.handler_import_ms", "startup.fastapi_import_ms", "min"),
    Ratio("startup.binding_healthy_to_bare", "startup.binding_healthy_ms", "startup.bare_healthy_ms", "min"),
    Ratio("startup.agent_healthy_to_bare", "startup.agent_healthy_ms", "startup.bare_healthy_ms", "min"),
    # Growth after warm-up as a fraction of the same process's peak RSS (bench/memory.py).
    Ratio("memory.binding_growth_to_peak", "memory.binding_growth_mb", "memory.binding_peak_rss_mb"),
    Ratio("memory.agent_growth_to_peak", "memory.agent_growth_mb", "memory.agent_peak_rss_mb"),
)
RATIO_BY_KEY = {r.key: r for r in RATIOS}


@dataclass(frozen=True)
class Target:
    key: str
    op: Literal[">=", "<="]
    value: float
    basis: str  # where the threshold comes from

    def met_by(self, measured: float) -> bool:
        return measured >= self.value if self.op == ">=" else measured <= self.value


TARGETS: tuple[Target, ...] = (
    Target(
        "binding.ratio_to_bare",
        ">=",
        0.021,
        "0.026 on 2026-12-06 (301 / 11,419 per s; full run, same ratio at 64 clients), less 20%",
    ),
    Target(
        "binding.p99_to_bare",
        "<=",
        35.0,
        "28.1 on 2026-12-06 (75.6 / 2.69 ms; runs 26.3-32.1), plus 25%: no worse than today's ratio beyond noise",
    ),
    Target(
        "agent.p50_to_bare",
        "<=",
        54.0,
        "43 on 2026-12-07 (10.3 / 0.245 ms; three measurements of 3 x 100 chats: 41.1, 42.9, 46.3), plus 25%: "
        "no worse than today's ratio beyond noise",
    ),
    # Counts: no reference needed (see the module docstring).
    Target(
        "agent.workload_token_calls_per_100",
        "<=",
        2.0,
        "0 measured; the workload token is cached per person (900 s), and one fetch per 50 chats would already be a regression",
    ),
    Target(
        "agent.outbound_token_calls_per_100",
        "<=",
        10.0,
        "0 measured since outbound tokens are reused (was 100: one per tool call); 10 leaves room for a reuse window ending mid-run",
    ),
    Target(
        "startup.import_to_fastapi",
        "<=",
        1.85,
        "1.49 on 2026-12-07 (333 / 223 ms, fastest of 5; 1.490-1.498 in three measurements), plus 25%",
    ),
    Target(
        "startup.binding_healthy_to_bare",
        "<=",
        1.6,
        "1.18-1.35 on 2026-12-07 (419 / 311 ms, fastest of 5, quiet machine), 1.27 plus 25%; about 100 ms more start-up work crosses it",
    ),
    Target(
        "startup.agent_healthy_to_bare",
        "<=",
        1.7,
        "1.29-1.43 on 2026-12-07 (445 / 311 ms, fastest of 5, quiet machine), 1.36 plus 25%; about 100 ms more start-up work crosses it",
    ),
    Target(
        "memory.binding_growth_to_peak",
        "<=",
        0.05,
        "0.002 on 2026-12-06 (0.2 of 101 MB); 0.05 is 5 MB at that peak, a leak of about 500 bytes per request over 9,000",
    ),
    Target(
        "memory.agent_growth_to_peak",
        "<=",
        0.05,
        "0.001 on 2026-12-06 (0.1 of 98 MB); 0.05 is 5 MB at that peak, a leak of about 500 bytes per request over 9,000",
    ),
)


def number(value: object) -> float | None:
    """A finite number from results.json, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def ratio(figure: object, reference: object) -> float | None:
    """figure / reference to four significant digits; None if either was not measured or the reference is not positive."""
    top, bottom = number(figure), number(reference)
    if top is None or bottom is None or bottom <= 0:
        return None
    return float(f"{top / bottom:.4g}")


def operands(results: Mapping[str, Any], r: Ratio) -> tuple[float | None, float | None]:
    """The figure and the reference a ratio divides: the flat medians, or the fastest runs from "spread"."""
    if r.statistic == "median":
        return number(results.get(r.figure)), number(results.get(r.reference))
    spread = results.get("spread")
    spread = spread if isinstance(spread, Mapping) else {}

    def fastest(key: str) -> float | None:
        entry = spread.get(key)
        return number(entry.get("min")) if isinstance(entry, Mapping) else None

    return fastest(r.figure), fastest(r.reference)


def with_ratios(results: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `results` with every ratio whose figure and reference are both there (a ratio already
    recorded stays when they are not, as in results from before the reference was measured)."""
    computed = dict(results)
    for r in RATIOS:
        value = ratio(*operands(results, r))
        if value is not None:
            computed[r.key] = value
    return computed


@dataclass(frozen=True)
class Verdict:
    target: Target
    measured: float | None
    figure: float | None  # the absolute figure and its reference, for information (None for a count)
    reference: float | None

    @property
    def met(self) -> bool | None:
        return None if self.measured is None else self.target.met_by(self.measured)

    @property
    def word(self) -> str:
        return NOT_MEASURED if self.met is None else ("met" if self.met else "NOT met")


def verdicts(results: Mapping[str, Any], targets: tuple[Target, ...] = TARGETS) -> list[Verdict]:
    """Every target's verdict on `results`; a figure, reference or ratio missing gives "not measured"."""
    complete = with_ratios(results)
    judged = []
    for target in targets:
        r = RATIO_BY_KEY.get(target.key)
        figure, reference = operands(complete, r) if r else (None, None)
        judged.append(Verdict(target, number(complete.get(target.key)), figure, reference))
    return judged


def recorded(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The targets as results.json keeps them: the measured ones, with their verdict and what they compare."""
    entries: dict[str, dict[str, Any]] = {}
    for v in verdicts(results):
        if v.met is None:
            continue
        entry: dict[str, Any] = {"op": v.target.op, "value": v.target.value, "met": v.met, "basis": v.target.basis}
        r = RATIO_BY_KEY.get(v.target.key)
        if r:
            entry.update(figure=r.figure, reference=r.reference, statistic=r.statistic)
        entries[v.target.key] = entry
    return entries
