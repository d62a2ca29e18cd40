"""The `make bench` report: bench/report.md and bench/latency.png from the benchmark results.

`write_report` renders both from a results dict (the bench/results.json format: flat median and ratio
keys, "spread", "targets", "quota", "machine", "details") and per-request latencies in milliseconds keyed
by an endpoint label. Any figure may be missing (its benchmark skipped); the report then says
"not measured" for it. The targets table is judged by `bench/targets.py` (as `make bench-check` does), and
the quota table is `bench/quotas.py`'s. Output is deterministic: the same input gives the same bytes.

    python -m bench.report [--results bench/results.json] [--latencies bench/tmp/latencies.json] [--out-dir bench]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.targets import NOT_MEASURED, RATIO_BY_KEY, verdicts, with_ratios

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.json"
LATENCIES = BENCH / "tmp" / "latencies.json"

# The image: 12 x 7 inches at 100 dpi is 1200 x 700 pixels.
FIG_SIZE_IN = (12.0, 7.0)
FIG_DPI = 100
# No Software/date entries in the PNG, so re-rendering gives the same bytes.
PNG_METADATA: dict[str, str | None] = {"Software": None}
# Keys of results.json that are not figures.
RESERVED = frozenset({"spread", "targets", "quota", "machine", "details"})


@dataclass(frozen=True)
class Section:
    title: str
    how: str
    rows: tuple[tuple[str, str], ...]  # (results key, label with unit)


SECTIONS: tuple[Section, ...] = (
    Section(
        "Session binding",
        "The session binding service (uvicorn, one worker) is pinned to one CPU core and driven by 16 concurrent "
        "clients; each request is a distinct, valid completion (its own sessionUri, started in the sessions table, "
        "signed binding cookie, `customState` echo and ALB-format ES256 token; two conditional writes to the sessions "
        "table on a local dynalite, and one `CompleteResourceTokenAuth` call to a local AgentCore stand-in). A bare FastAPI app with "
        "one route is measured the same way, on the same core, in the same run, as the reference; the ratios are "
        "binding completions per second over bare requests per second, and binding p99 over bare p99. Latencies are "
        "per request, seen by the client.",
        (
            ("binding.completions_per_s", "completions per s"),
            ("binding.p50_ms", "latency p50 (ms)"),
            ("binding.p99_ms", "latency p99 (ms)"),
            ("binding.bare_per_s", "bare FastAPI requests per s"),
            ("binding.bare_p99_ms", "bare FastAPI latency p99 (ms)"),
            ("binding.ratio_to_bare", "throughput ratio to bare FastAPI"),
            ("binding.p99_to_bare", "p99 ratio to bare FastAPI"),
            ("binding.c64_per_s", "completions per s, 64 clients"),
            ("binding.c64_p99_ms", "latency p99 (ms), 64 clients"),
        ),
    ),
    Section(
        "ALB identity verification",
        "Verifying an ALB-signed `x-amzn-oidc-data` ES256 token in process. Warm: the signing key is already cached, "
        "so the cost is parsing and one signature check. Cold: the first token for a key id, including fetching the "
        "public key from the local key server.",
        (
            ("identity.verify_warm_us", "verify, key cached (µs)"),
            ("identity.verify_cold_us", "verify, key fetched (µs)"),
        ),
    ),
    Section(
        "Agent",
        "The agent (uvicorn, one worker) runs alone on one core; the AgentCore, Bedrock and API stand-ins run in "
        "their own processes and answer at once (zero latency), so the figures are the agent's own cost per chat "
        "request: two Converse calls, one tool call with its outbound token, and the SSE stream (the stand-ins' own "
        "processing is included, so this is an upper bound). One user who already consented sends sequential chats; "
        "AgentCore Identity calls are counted per 100 chats. The reference is a bare FastAPI endpoint taking the same "
        "request and streaming the same four events, byte for byte, with nothing between: on the same core, at the same "
        "concurrency, its batches interleaved with the agent's.",
        (
            ("agent.overhead_p50_ms", "overhead p50 (ms)"),
            ("agent.overhead_p99_ms", "overhead p99 (ms)"),
            ("agent.bare_p50_ms", "bare FastAPI stream p50 (ms)"),
            ("agent.bare_p99_ms", "bare FastAPI stream p99 (ms)"),
            ("agent.p50_to_bare", "p50 ratio to bare FastAPI stream"),
            ("agent.p99_to_bare", "p99 ratio to bare FastAPI stream"),
            ("agent.workload_token_calls_per_100", "GetWorkloadAccessTokenForUserId per 100 chats"),
            ("agent.outbound_token_calls_per_100", "GetResourceOauth2Token per 100 chats"),
        ),
    ),
    Section(
        "Start-up",
        "Wall-clock time to import the request handler module in a fresh interpreter, and from process start until "
        "each service first answers its health check. References, measured in turn with them in every run: "
        "`import fastapi` alone in a fresh interpreter, and a bare FastAPI app under the same uvicorn command.",
        (
            ("startup.handler_import_ms", "handler import (ms)"),
            ("startup.fastapi_import_ms", "`import fastapi` alone (ms)"),
            ("startup.agent_healthy_ms", "agent healthy (ms)"),
            ("startup.binding_healthy_ms", "session binding healthy (ms)"),
            ("startup.bare_healthy_ms", "bare FastAPI app healthy (ms)"),
            ("startup.import_to_fastapi", "handler import / `import fastapi`"),
            ("startup.agent_healthy_to_bare", "agent healthy / bare app healthy"),
            ("startup.binding_healthy_to_bare", "session binding healthy / bare app healthy"),
        ),
    ),
    Section(
        "Memory",
        "Resident set size of each service process (uvicorn, one worker) over 10,000 requests: the peak, and the "
        "growth from after the first 1,000 requests to after the last. The binding service keeps no per-session state "
        "in memory (its ledger is the DynamoDB table); the agent serves 50 consented users. The reference for growth is "
        "the same process's peak RSS: the ratios are growth over peak.",
        (
            ("memory.agent_peak_rss_mb", "agent peak RSS (MB)"),
            ("memory.binding_peak_rss_mb", "session binding peak RSS (MB)"),
            ("memory.agent_growth_mb", "agent RSS growth (MB)"),
            ("memory.binding_growth_mb", "session binding RSS growth (MB)"),
            ("memory.agent_growth_to_peak", "agent growth / peak RSS"),
            ("memory.binding_growth_to_peak", "session binding growth / peak RSS"),
        ),
    ),
    Section(
        "Build",
        "Wall-clock time of `cdk synth` and of the test suite on this machine.",
        (
            ("build.synth_s", "cdk synth (s)"),
            ("build.test_s", "tests (s)"),
        ),
    ),
)

KNOWN_LABELS: dict[str, str] = {key: label for section in SECTIONS for key, label in section.rows}


def fmt(value: object) -> str:
    """A figure rounded for reading: about three significant digits, thousands separated."""
    if value is None:
        return NOT_MEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            return str(number)
        if abs(number) >= 100:
            return f"{number:,.0f}"
        return f"{number:.3g}"
    return str(value)


def _cell(text: object) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def value_of(results: Mapping[str, Any], key: str) -> object:
    """The median for a key: the flat value, else the spread's median, else None (not measured)."""
    if key in results and key not in RESERVED:
        return results[key]
    spread = _mapping(_mapping(results.get("spread")).get(key))
    return spread.get("median")


def _figure_row(results: Mapping[str, Any], key: str, label: str) -> list[str]:
    value = value_of(results, key)
    if value is None:
        return [label, NOT_MEASURED, "", "", f"`{key}`"]
    spread = _mapping(_mapping(results.get("spread")).get(key))
    low, high = spread.get("min"), spread.get("max")
    span = f"{fmt(low)}–{fmt(high)}" if low is not None and high is not None else "–"
    runs = spread.get("runs")
    return [label, fmt(value), span, fmt(runs) if runs is not None else "–", f"`{key}`"]


FIGURE_HEADER = ("figure", "median", "min–max", "runs", "key")


def _machine_line(results: Mapping[str, Any]) -> str:
    machine = _mapping(results.get("machine"))

    def get(name: str) -> str:
        value = machine.get(name)
        return "unknown" if value in (None, "") else str(value)

    cpus = machine.get("cpus")
    cpus_text = "unknown number of" if cpus is None else str(cpus)
    cpu_model = machine.get("cpu_model")
    cpu_text = "an unrecorded CPU model" if cpu_model in (None, "") else str(cpu_model)
    return f"Measured {get('date')} on {cpu_text}, {cpus_text} CPU(s) available, Python {get('python')}."


def _targets(results: Mapping[str, Any]) -> list[str]:
    """Every target of `bench/targets.py`, judged as `make bench-check` judges it, with the absolute figure
    and its reference beside the ratio (a count has none)."""
    rows = []
    for v in verdicts(results):
        key = v.target.key
        r = RATIO_BY_KEY.get(key)
        beside = f"{fmt(v.figure)} / {fmt(v.reference)}" if r else "a count: no reference"
        if r and r.statistic == "min":
            beside += " (fastest runs)"
        verdict = "**NOT met**" if v.met is False else v.word
        goal = f"{v.target.op} {fmt(v.target.value)}"
        rows.append([KNOWN_LABELS.get(key, key), f"`{key}`", goal, fmt(v.measured), beside, verdict, v.target.basis])
    return _table(("target", "key", "target", "measured", "figure / reference", "result", "threshold from"), rows)


QUOTA_HOW = (
    "What one AWS account sustains at AgentCore Identity's quotas, from the calls the AgentCore stand-in counted per "
    "operation in a load run (`bench/quota_run.py`): for each unit of work, its calls against each quota, and the most "
    "units per second before the first quota binds (the smallest quota / calls per unit). A consent is the chat that "
    "asks and the completion; the token it grants is fetched by the person's next chat, a first chat in that task. "
    "Other limits (Bedrock's quotas, the tasks' own capacity) are not in this table."
)


def _quota(results: Mapping[str, Any]) -> list[str]:
    quota = _mapping(results.get("quota"))
    rows = [_mapping(r) for r in quota.get("rows", []) if isinstance(r, Mapping)]
    lines = ["", "## AgentCore Identity quotas", "", QUOTA_HOW, ""]
    if not rows:
        return [*lines, "Not measured: the `agent` section makes the load run."]
    quotas = _mapping(quota.get("quotas"))
    names = list(quotas)
    table = []
    for row in rows:
        calls = _mapping(row.get("calls_per_unit"))
        best = row.get("max_per_s")
        bound = ", ".join(str(name) for name in row.get("bound_by") or [])
        most = "not limited by these quotas" if best is None else fmt(best)
        table.append(
            [str(row.get("label", row.get("unit"))), fmt(row.get("count")), *(fmt(calls.get(n)) for n in names), most, bound or "–"]
        )
    header = ("unit", "measured", *(f"{name} per unit" for name in names), "most per s, one account", "bound by")
    lines += _table(header, table)
    load = _mapping(quota.get("load"))
    if load:
        lines += [
            "",
            f"Load run: {fmt(load.get('people'))} people, each consenting on one agent task, then chatting "
            f"{fmt(load.get('chats_per_person'))} times on a second; {fmt(load.get('errors'))} errors, "
            f"{fmt(load.get('chats_without_a_tool_call'))} chats without a tool call.",
        ]
    per_s = ", ".join(f"{name} {fmt(value)}/s" for name, value in quotas.items())
    lines += ["", f"Quotas, per account and Region (adjustable): {per_s}. Source: {quota.get('source', 'unrecorded')}"]
    return lines


TARGETS_HOW = (
    "Each target is a ratio of a figure to a reference measured in the same run, on the same core (or a count of calls, "
    "which needs no reference), so it means the same on any machine; the absolute figure and its reference are beside "
    "it, for information. `make bench-check` prints the same verdicts."
)


def _binding_by_clients(results: Mapping[str, Any]) -> list[str]:
    """Binding and bare FastAPI at each client count, when the details hold them (else nothing)."""
    details = _mapping(_mapping(results.get("details")).get("binding"))
    rows = []
    for name in sorted((k for k in details if k.startswith("c") and k[1:].isdigit()), key=lambda k: int(k[1:])):
        level = _mapping(details[name])
        for endpoint, label in (("binding", "session binding"), ("bare", "bare FastAPI")):
            stats = _mapping(level.get(endpoint))
            cells = [label, name[1:]]
            for metric in ("per_s", "p50_ms", "p99_ms"):
                m = _mapping(stats.get(metric))
                if m.get("median") is None:
                    cells.append(NOT_MEASURED)
                elif m.get("min") is not None and m.get("max") is not None:
                    cells.append(f"{fmt(m['median'])} ({fmt(m['min'])}–{fmt(m['max'])})")
                else:
                    cells.append(fmt(m["median"]))
            rows.append(cells)
    if not rows:
        return []
    header = ("endpoint", "clients", "per s (min–max)", "p50 ms (min–max)", "p99 ms (min–max)")
    return ["", "By number of clients:", "", *_table(header, rows)]


def render_markdown(results: Mapping[str, Any], image_name: str = "latency.png") -> str:
    results = with_ratios(results)
    lines = ["# Benchmark report", "", _machine_line(results), ""]
    lines.append("Each figure is the median of several runs, with the lowest and highest run beside it.")
    for section in SECTIONS:
        lines += ["", f"## {section.title}", "", section.how, ""]
        lines += _table(FIGURE_HEADER, [_figure_row(results, key, label) for key, label in section.rows])
        if section.title == "Session binding":
            lines += _binding_by_clients(results)
        if section.title == "Agent":
            lines += _quota(results)
    known = set(KNOWN_LABELS)
    spread_keys = [k for k in _mapping(results.get("spread")) if k not in results]
    other = [k for k in [*results, *spread_keys] if k not in RESERVED and k not in known]
    if other:
        lines += ["", "## Other figures", ""]
        lines += _table(FIGURE_HEADER, [_figure_row(results, key, key) for key in other])
    lines += ["", "## Targets", "", TARGETS_HOW, "", *_targets(results)]
    lines += [
        "",
        "## Latency",
        "",
        "Empirical distribution of per-request latency for each endpoint (log scale), with p50 and p99 marked.",
        "",
        f"![latency]({image_name})",
        "",
    ]
    return "\n".join(lines)


def _clean(samples: Sequence[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Finite, positive latencies, sorted (a log axis cannot show zero)."""
    values = np.asarray([float(s) for s in samples if isinstance(s, int | float) and not isinstance(s, bool)], dtype=np.float64)
    return np.sort(values[np.isfinite(values) & (values > 0)])


def render_latency(latencies: Mapping[str, Sequence[float]], path: Path) -> None:
    with matplotlib.style.context("default"):
        fig = Figure(figsize=FIG_SIZE_IN, dpi=FIG_DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        plotted = 0
        for index, (label, samples) in enumerate(latencies.items()):
            values = _clean(samples)
            if values.size == 0:
                continue
            color = f"C{index % 10}"
            style = "--" if "bare" in label.lower() else "-"
            fraction = np.arange(1, values.size + 1, dtype=np.float64) / values.size
            p50, p99 = (float(p) for p in np.percentile(values, [50, 99]))
            ax.step(
                values,
                fraction,
                where="post",
                color=color,
                linestyle=style,
                linewidth=1.8,
                label=f"{label}: p50 {fmt(p50)} ms, p99 {fmt(p99)} ms (n={values.size:,})",
            )
            ax.plot([p50], [0.5], marker="o", color=color, markersize=8, markeredgecolor="black", linestyle="none")
            ax.plot([p99], [0.99], marker="D", color=color, markersize=8, markeredgecolor="black", linestyle="none")
            plotted += 1
        if plotted:
            ax.set_xscale("log")
            ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
            ax.axhline(0.99, color="grey", linewidth=0.8, linestyle=":")
            # Marker legend entries, drawn without data so they do not move the axes.
            ax.plot([], [], marker="o", color="grey", markeredgecolor="black", linestyle="none", label="p50")
            ax.plot([], [], marker="D", color="grey", markeredgecolor="black", linestyle="none", label="p99")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            # Below the axes, so it never hides a curve.
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=10, frameon=False)
            ax.grid(True, which="both", axis="x", alpha=0.3)
            ax.grid(True, which="major", axis="y", alpha=0.3)
        else:
            ax.text(0.5, 0.5, "no latency samples", ha="center", va="center", fontsize=16, transform=ax.transAxes)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("latency per request (ms, log scale)", fontsize=12)
        ax.set_ylabel("fraction of requests at or below", fontsize=12)
        ax.set_title("Per-request latency by endpoint (empirical CDF)", fontsize=14)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=FIG_DPI, metadata=PNG_METADATA)


def write_report(results: dict[str, Any], latencies: dict[str, list[float]], out_dir: Path) -> None:
    """Write out_dir/report.md and out_dir/latency.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    image = out_dir / "latency.png"
    render_latency(latencies, image)
    (out_dir / "report.md").write_text(render_markdown(results, image.name), encoding="utf-8")


def load_latencies(path: Path) -> dict[str, list[float]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of label -> list of latencies in ms")
    return {str(label): list(values) for label, values in data.items() if isinstance(values, list)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-render the benchmark report (report.md, latency.png).")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--latencies", type=Path, default=LATENCIES)
    parser.add_argument("--out-dir", type=Path, default=None, help="default: the directory of the results file")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        print(f"{args.results}: not found; run `make bench` first", file=sys.stderr)
        return 1
    results = json.loads(args.results.read_text(encoding="utf-8"))
    if not isinstance(results, dict):
        print(f"{args.results}: expected a JSON object", file=sys.stderr)
        return 1
    latencies: dict[str, list[float]] = {}
    if args.latencies.is_file():
        latencies = load_latencies(args.latencies)
    else:
        print(f"{args.latencies}: not found; the latency figure will be empty", file=sys.stderr)
    out_dir = args.out_dir if args.out_dir is not None else args.results.resolve().parent
    write_report(results, latencies, out_dir)
    print(f"wrote {out_dir / 'report.md'} and {out_dir / 'latency.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
