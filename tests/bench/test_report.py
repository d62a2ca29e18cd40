"""bench/report.py: report.md and latency.png from benchmark results, with figures missing or present."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.quotas import quota_table
from bench.report import KNOWN_LABELS, fmt, main, write_report
from bench.targets import NOT_MEASURED, TARGETS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FIGURES: dict[str, float] = {
    "binding.completions_per_s": 1069.69,
    "binding.p50_ms": 14.54,
    "binding.p99_ms": 18.76,
    "binding.bare_per_s": 17493.7,
    "binding.bare_p99_ms": 1.91,
    "binding.c64_per_s": 1052.3,
    "binding.c64_p99_ms": 71.2,
    "identity.verify_warm_us": 41.27,
    "identity.verify_cold_us": 1832.4,
    "agent.overhead_p50_ms": 4.867,
    "agent.overhead_p99_ms": 5.317,
    "agent.bare_p50_ms": 0.251,
    "agent.bare_p99_ms": 0.412,
    "agent.workload_token_calls_per_100": 0.0,
    "agent.outbound_token_calls_per_100": 100.0,
    "startup.handler_import_ms": 612.3,
    "startup.fastapi_import_ms": 421.0,
    "startup.agent_healthy_ms": 1480.0,
    "startup.binding_healthy_ms": 903.2,
    "startup.bare_healthy_ms": 1000.0,
    "memory.agent_peak_rss_mb": 118.4,
    "memory.binding_peak_rss_mb": 74.9,
    "memory.agent_growth_mb": 1.3,
    "memory.binding_growth_mb": 0.4,
    "build.synth_s": 38.71,
    "build.test_s": 94.2,
}


def sample_results(**drop: bool) -> dict[str, Any]:
    """Results in the bench/results.json format; keyword names (dots as __) are left out."""
    left_out = {name.replace("__", ".") for name in drop}
    figures = {k: v for k, v in FIGURES.items() if k not in left_out}
    return {
        **figures,
        "spread": {k: {"median": v, "min": v * 0.9, "max": v * 1.2, "runs": 3} for k, v in figures.items()},
        "targets": {"binding.ratio_to_bare": {"op": ">=", "value": 0.021, "met": True}},  # a record only: the report judges anew
        "quota": {"load": {"people": 50, "chats_per_person": 10, "errors": 0, "chats_without_a_tool_call": 0}, **quota_table(QUOTA_COUNTS)},
        "machine": {"python": "3.11.7", "cpus": 2, "date": "2026-11-28", "cpu_model": "Bench CPU 9000"},
        "details": {"free": "form"},
    }


QUOTA_COUNTS: dict[str, dict[str, Any]] = {
    "consent": {
        "count": 50,
        "calls": {"GetWorkloadAccessTokenForUserId": 50, "GetResourceOauth2Token": 50, "CompleteResourceTokenAuth": 50},
    },
    "chat_first": {"count": 50, "calls": {"GetWorkloadAccessTokenForUserId": 50, "GetResourceOauth2Token": 50}},
    "chat_next": {"count": 450, "calls": {}},
    "tool_call": {"count": 500, "calls": {"GetWorkloadAccessTokenForUserId": 50, "GetResourceOauth2Token": 50}},
}


def sample_latencies() -> dict[str, list[float]]:
    rng = np.random.default_rng(7)
    labels = {
        "session-binding, 16 clients": 14.5,
        "bare FastAPI, 16 clients": 0.85,
        "session-binding, 64 clients": 61.0,
        "bare FastAPI, 64 clients": 3.5,
        "agent chat, 1 client": 4.9,
    }
    return {label: [float(x) * median for x in rng.lognormal(0, 0.2, 500)] for label, median in labels.items()}


def row_for(report: str, key: str) -> str:
    """The figure table row naming a key (not the targets row)."""
    rows = [line for line in report.splitlines() if line.startswith("| ") and line.endswith(f"| `{key}` |")]
    assert len(rows) == 1, (key, rows)
    return rows[0]


def target_row(report: str, key: str) -> list[str]:
    rows = [line for line in report.splitlines() if f"| `{key}` | " in line]
    assert len(rows) == 1, (key, rows)
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data.startswith(PNG_SIGNATURE)
    chunks, at = [], len(PNG_SIGNATURE)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def test_fmt_rounds_for_reading() -> None:
    assert fmt(1069.69) == "1,070"
    assert fmt(17493.7) == "17,494"
    assert fmt(14.54) == "14.5"
    assert fmt(4.867) == "4.87"
    assert fmt(0.061) == "0.061"
    assert fmt(0.0) == "0"
    assert fmt(100.0) == "100"
    assert fmt(3) == "3"
    assert fmt(None) == NOT_MEASURED


def test_report_shows_every_figure_with_its_spread(tmp_path: Path) -> None:
    write_report(sample_results(), sample_latencies(), tmp_path)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")

    assert report.startswith("# ")
    assert "2026-11-28" in report and "Bench CPU 9000" in report and "3.11.7" in report
    for key, value in FIGURES.items():
        row = row_for(report, key)
        assert f"| {KNOWN_LABELS[key]} | {fmt(value)} | {fmt(value * 0.9)}–{fmt(value * 1.2)} | 3 |" in row
    assert NOT_MEASURED not in report
    assert "| completions per s | 1,070 |" in report
    # Ratios are computed from the figure and its reference, and shown beside them.
    assert row_for(report, "binding.ratio_to_bare").startswith(f"| {KNOWN_LABELS['binding.ratio_to_bare']} | 0.0612 | – | – |")
    assert row_for(report, "binding.p99_to_bare").startswith(f"| {KNOWN_LABELS['binding.p99_to_bare']} | 9.82 |")
    assert row_for(report, "agent.p50_to_bare").startswith(f"| {KNOWN_LABELS['agent.p50_to_bare']} | 19.4 |")
    # Start-up ratios divide the fastest runs (0.9 of the median in these samples): the same quotient here.
    assert row_for(report, "startup.import_to_fastapi").startswith(f"| {KNOWN_LABELS['startup.import_to_fastapi']} | 1.45 |")
    assert "![latency](latency.png)" in report
    for section in (
        "Session binding",
        "ALB identity verification",
        "Agent",
        "AgentCore Identity quotas",
        "Start-up",
        "Memory",
        "Build",
        "Targets",
    ):
        assert f"\n## {section}\n" in report


def test_missing_figures_say_not_measured(tmp_path: Path) -> None:
    results = sample_results(binding__p99_ms=True, build__synth_s=True, build__test_s=True, identity__verify_cold_us=True)
    del results["machine"]
    write_report(results, sample_latencies(), tmp_path)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")

    for key in ("binding.p99_ms", "build.synth_s", "build.test_s", "identity.verify_cold_us"):
        assert f"| {NOT_MEASURED} |" in row_for(report, key)
    assert fmt(FIGURES["binding.p50_ms"]) in row_for(report, "binding.p50_ms")
    # A target on a figure that was not measured is neither met nor NOT met.
    assert target_row(report, "binding.p99_to_bare")[3:6] == [NOT_MEASURED, f"{NOT_MEASURED} / 1.91", NOT_MEASURED]
    assert report.splitlines()[2] == "Measured unknown on an unrecorded CPU model, unknown number of CPU(s) available, Python unknown."


def threshold(key: str) -> float:
    return next(t.value for t in TARGETS if t.key == key)


def test_targets_table_judges_every_target_with_the_figures_beside_it(tmp_path: Path) -> None:
    results = sample_results()
    # Worse than the reference by twice what the target allows, whatever the absolute figure.
    results["binding.bare_p99_ms"] = results["spread"]["binding.bare_p99_ms"]["median"] = 18.76 / (2 * threshold("binding.p99_to_bare"))
    results["agent.outbound_token_calls_per_100"] = 100.0
    write_report(results, {}, tmp_path)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")

    assert [row[1] for row in map(lambda key: target_row(report, key), (t.key for t in TARGETS))] == [f"`{t.key}`" for t in TARGETS]
    ratio_row = target_row(report, "binding.ratio_to_bare")
    assert ratio_row[:6] == [
        "throughput ratio to bare FastAPI",
        "`binding.ratio_to_bare`",
        f">= {fmt(threshold('binding.ratio_to_bare'))}",
        "0.0612",
        "1,070 / 17,494",
        "met",
    ]
    assert ratio_row[6] == next(t.basis for t in TARGETS if t.key == "binding.ratio_to_bare")
    assert target_row(report, "binding.p99_to_bare")[5] == "**NOT met**"
    assert target_row(report, "agent.outbound_token_calls_per_100")[3:6] == ["100", "a count: no reference", "**NOT met**"]
    assert target_row(report, "startup.import_to_fastapi")[4] == f"{fmt(612.3 * 0.9)} / {fmt(421.0 * 0.9)} (fastest runs)"
    assert report.count("NOT met") == 2


def test_quota_table_shows_calls_per_unit_and_what_binds_first(tmp_path: Path) -> None:
    write_report(sample_results(), {}, tmp_path)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    section = report.split("## AgentCore Identity quotas", 1)[1].split("\n## ", 1)[0]

    assert (
        "| unit | measured | GetWorkloadAccessToken* per unit | GetResourceOauth2Token per unit | CompleteResourceTokenAuth per unit |"
        in section
    )
    assert "| consent: the chat that asks, and the completion | 50 | 1 | 1 | 1 | 100 | CompleteResourceTokenAuth |" in section
    assert "| 50 | 1 | 1 | 0 | 200 | GetWorkloadAccessToken*, GetResourceOauth2Token |" in section
    assert "| 450 | 0 | 0 | 0 | not limited by these quotas | – |" in section
    assert "| tool call, over every chat of the load run | 500 | 0.1 | 0.1 | 0 | 2,000 |" in section
    assert "50 people" in section and "10 times" in section
    assert "bedrock-agentcore-limits.html" in section


def test_quota_table_not_measured_without_a_load_run(tmp_path: Path) -> None:
    results = sample_results()
    del results["quota"]
    write_report(results, {}, tmp_path)
    section = (tmp_path / "report.md").read_text(encoding="utf-8").split("## AgentCore Identity quotas", 1)[1].split("\n## ", 1)[0]
    assert "Not measured" in section and "|" not in section


def test_unknown_figures_are_reported_not_dropped(tmp_path: Path) -> None:
    results = sample_results()
    results["cache.hits_per_s"] = 2500.0
    write_report(results, {}, tmp_path)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Other figures" in report
    assert "| cache.hits_per_s | 2,500 |" in row_for(report, "cache.hits_per_s")


@pytest.mark.parametrize(
    "latencies", [sample_latencies(), {}, {"agent chat, 1 client": [0.0, -1.0]}], ids=["samples", "none", "unplottable"]
)
def test_latency_png_is_a_valid_png_of_the_expected_size(tmp_path: Path, latencies: dict[str, list[float]]) -> None:
    write_report(sample_results(), latencies, tmp_path)
    chunks = png_chunks((tmp_path / "latency.png").read_bytes())

    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert (width, height) == (1200, 700)
    # No text chunks: nothing (software version, time) that changes between renders.
    assert not {b"tEXt", b"iTXt", b"zTXt", b"tIME"} & set(kinds)


def test_rendering_twice_gives_identical_bytes(tmp_path: Path) -> None:
    for name in ("one", "two"):
        write_report(sample_results(), sample_latencies(), tmp_path / name)
    for output in ("report.md", "latency.png"):
        assert (tmp_path / "one" / output).read_bytes() == (tmp_path / "two" / output).read_bytes(), output


def test_cli_rerenders_from_the_json_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results_path, latencies_path = tmp_path / "results.json", tmp_path / "tmp" / "latencies.json"
    latencies_path.parent.mkdir()
    results_path.write_text(json.dumps(sample_results(memory__agent_growth_mb=True)))
    latencies_path.write_text(json.dumps(sample_latencies()))

    assert main(["--results", str(results_path), "--latencies", str(latencies_path)]) == 0
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"| {NOT_MEASURED} |" in row_for(report, "memory.agent_growth_mb")
    assert (tmp_path / "latency.png").read_bytes().startswith(PNG_SIGNATURE)

    direct = tmp_path / "direct"
    write_report(sample_results(memory__agent_growth_mb=True), sample_latencies(), direct)
    assert (direct / "latency.png").read_bytes() == (tmp_path / "latency.png").read_bytes()
    assert (direct / "report.md").read_bytes() == (tmp_path / "report.md").read_bytes()
    assert "wrote" in capsys.readouterr().out


def test_cli_without_results_fails_plainly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--results", str(tmp_path / "absent.json")]) == 1
    assert "make bench" in capsys.readouterr().err
