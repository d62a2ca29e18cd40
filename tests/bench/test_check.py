"""bench/check.py: `make bench-check`'s verdict table and exit status, on new and old results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.check import main
from bench.targets import TARGETS
from tests.bench.samples import measured_today


def line_for(output: str, key: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.startswith(key + " ") and " = " not in line]
    assert len(lines) == 1, (key, lines)
    return lines[0].split()


def test_each_line_shows_the_ratio_its_target_and_the_figures_beside_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({**measured_today(), "machine": {"quick": True}}))

    assert main([], path) == 0
    output = capsys.readouterr().out
    target = next(t for t in TARGETS if t.key == "binding.ratio_to_bare")
    assert line_for(output, "binding.ratio_to_bare") == [
        "binding.ratio_to_bare",
        "0.02727",
        ">=",
        f"{target.value:g}",
        "300",
        "11,000",
        "met",
    ]
    assert line_for(output, "agent.outbound_token_calls_per_100")[-2:] == ["(count)", "met"]
    assert "binding.ratio_to_bare = binding.completions_per_s / binding.bare_per_s" in output
    assert f"{len(TARGETS)} of {len(TARGETS)} targets met (quick run: not for quoting)" in output


def test_strict_fails_on_a_target_not_met(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({**measured_today(), "agent.outbound_token_calls_per_100": 100.0}))

    assert main([], path) == 0  # informational by default
    assert line_for(capsys.readouterr().out, "agent.outbound_token_calls_per_100")[-2:] == ["NOT", "met"]
    assert main(["--strict"], path) == 1


def test_old_results_say_not_measured_and_strict_fails_on_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"binding.completions_per_s": 300.89, "binding.p99_ms": 75.58, "targets": {}, "machine": "odd"}))

    assert main([], path) == 0
    output = capsys.readouterr().out
    assert line_for(output, "binding.p99_to_bare") == [
        "binding.p99_to_bare",
        "-",
        "<=",
        line_for(output, "binding.p99_to_bare")[3],
        "75.58",
        "-",
        "not",
        "measured",
    ]
    assert line_for(output, "memory.agent_growth_to_peak")[-2:] == ["not", "measured"]
    assert f"0 of {len(TARGETS)} targets met" in output
    assert main(["--strict"], path) == 1


def test_without_results_it_says_to_run_the_benchmarks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], tmp_path / "absent.json") == 0
    assert main(["--strict"], tmp_path / "absent.json") == 1
    assert "make bench" in capsys.readouterr().err
