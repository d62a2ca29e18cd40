"""bench/targets.py: ratios to same-run references, the targets' verdicts, and results from before the references."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.targets import NOT_MEASURED, RATIO_BY_KEY, RATIOS, TARGETS, Target, ratio, recorded, verdicts, with_ratios
from tests.bench.samples import measured_today

COUNTS = {"agent.workload_token_calls_per_100", "agent.outbound_token_calls_per_100"}


def by_key(results: dict[str, Any]) -> dict[str, Any]:
    return {v.target.key: v for v in verdicts(results)}


def test_every_target_is_a_same_run_ratio_or_a_count() -> None:
    for target in TARGETS:
        assert target.key in RATIO_BY_KEY or target.key in COUNTS, target.key
        assert target.basis and "PLACEHOLDER" not in target.basis, target.key
    # No target names an absolute figure (milliseconds, per second, megabytes) directly.
    figures = {r.figure for r in RATIOS} | {r.reference for r in RATIOS}
    assert not figures & {t.key for t in TARGETS}


def test_ratio_divides_the_figure_by_its_reference() -> None:
    assert ratio(300.0, 11_000.0) == 0.02727
    assert ratio(75.58, 2.69) == 28.1
    assert ratio(3, 2) == 1.5
    assert ratio(-0.5, 100.0) == -0.005  # memory can shrink after warm-up: a negative growth is a ratio too


@pytest.mark.parametrize(
    ("figure", "reference"),
    [(None, 1.0), (1.0, None), (1.0, 0.0), (1.0, -2.0), (True, 1.0), ("12", 1.0), (math.nan, 1.0), (1.0, math.inf)],
)
def test_ratio_of_something_not_measured_is_none(figure: object, reference: object) -> None:
    assert ratio(figure, reference) is None


def test_with_ratios_adds_each_ratio_whose_figure_and_reference_were_measured() -> None:
    results = {"binding.completions_per_s": 300.0, "binding.bare_per_s": 12_000.0, "binding.p99_ms": 80.0, "spread": {}}
    complete = with_ratios(results)

    assert complete["binding.ratio_to_bare"] == 0.025
    assert "binding.p99_to_bare" not in complete  # its reference was not measured
    assert "binding.ratio_to_bare" not in results  # the input is left alone


def test_start_up_ratios_divide_the_fastest_runs() -> None:
    results = measured_today()
    # One run of the handler import was hit by other work on the machine: the median moves, the fastest does not.
    results["startup.handler_import_ms"] = 900.0
    results["spread"]["startup.handler_import_ms"] = {"median": 900.0, "min": 310.0, "max": 1400.0, "runs": 5}
    results["spread"]["startup.fastapi_import_ms"] = {"median": 260.0, "min": 200.0, "max": 700.0, "runs": 5}
    verdict = by_key(results)["startup.import_to_fastapi"]

    assert with_ratios(results)["startup.import_to_fastapi"] == 1.55
    assert (verdict.figure, verdict.reference, verdict.met) == (310.0, 200.0, True)
    del results["spread"]
    assert by_key(results)["startup.import_to_fastapi"].word == NOT_MEASURED  # the medians alone are not enough


def test_a_recorded_ratio_stays_when_its_figures_are_gone() -> None:
    assert with_ratios({"binding.ratio_to_bare": 0.026})["binding.ratio_to_bare"] == 0.026
    # ...and is recomputed when they are there.
    assert (
        with_ratios({"binding.ratio_to_bare": 0.5, "binding.completions_per_s": 1.0, "binding.bare_per_s": 4.0})["binding.ratio_to_bare"]
        == 0.25
    )


@pytest.mark.parametrize(
    ("op", "value", "measured", "met"), [(">=", 1.0, 1.0, True), (">=", 1.0, 0.99, False), ("<=", 1.0, 1.0, True), ("<=", 1.0, 1.01, False)]
)
def test_a_target_is_met_at_its_threshold_and_not_beyond(op: Any, value: float, measured: float, met: bool) -> None:
    assert Target("k", op, value, "test").met_by(measured) is met


def test_todays_figures_meet_every_target() -> None:
    judged = verdicts(measured_today())
    assert [v.word for v in judged] == ["met"] * len(TARGETS)


def test_a_regression_against_the_reference_is_not_met_whatever_the_absolute_figure() -> None:
    fast_machine = {**measured_today(), "agent.overhead_p50_ms": 5.0, "agent.bare_p50_ms": 0.05}  # 100x the bare stream
    slow_machine = {**measured_today(), "agent.overhead_p50_ms": 20.0, "agent.bare_p50_ms": 1.0}  # same code, 4x slower machine

    assert by_key(fast_machine)["agent.p50_to_bare"].met is False
    assert by_key(slow_machine)["agent.p50_to_bare"].met is True


def test_a_verdict_shows_the_absolute_figure_and_reference_beside_the_ratio() -> None:
    verdict = by_key(measured_today())["binding.p99_to_bare"]
    assert (verdict.measured, verdict.figure, verdict.reference) == (27.78, 75.0, 2.7)
    count = by_key(measured_today())["agent.outbound_token_calls_per_100"]
    assert (count.measured, count.figure, count.reference) == (0.0, None, None)


def test_results_from_before_the_references_say_not_measured() -> None:
    # The shape of results.json before ratios: absolute figures only, and old absolute targets.
    old = {
        "binding.completions_per_s": 300.89,
        "binding.p99_ms": 75.58,
        "binding.bare_per_s": 11418.93,
        "agent.overhead_p50_ms": 6.632,
        "agent.workload_token_calls_per_100": 0.0,
        "startup.handler_import_ms": 305.7,
        "targets": {"startup.handler_import_ms": {"op": "<=", "value": 300.0, "met": False}},
    }
    judged = by_key(old)

    assert judged["binding.ratio_to_bare"].word == "met"  # both of its figures were there
    for key in ("binding.p99_to_bare", "agent.p50_to_bare", "startup.import_to_fastapi", "agent.outbound_token_calls_per_100"):
        assert judged[key].met is None and judged[key].word == NOT_MEASURED, key
    assert judged["binding.p99_to_bare"].figure == 75.58 and judged["binding.p99_to_bare"].reference is None
    assert by_key({})["memory.agent_growth_to_peak"].word == NOT_MEASURED


def test_recorded_targets_keep_only_what_was_measured_with_what_it_compares() -> None:
    results = {**measured_today(), "binding.p99_ms": 200.0}
    del results["startup.fastapi_import_ms"], results["spread"]["startup.fastapi_import_ms"]
    entries = recorded(results)

    assert "startup.import_to_fastapi" not in entries
    assert entries["binding.p99_to_bare"] == {
        "op": "<=",
        "value": by_key(results)["binding.p99_to_bare"].target.value,
        "met": False,
        "basis": by_key(results)["binding.p99_to_bare"].target.basis,
        "figure": "binding.p99_ms",
        "reference": "binding.bare_p99_ms",
        "statistic": "median",
    }
    assert "figure" not in entries["agent.workload_token_calls_per_100"]
