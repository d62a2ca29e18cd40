"""Figures in the bench/results.json format, shared by the bench tests."""

from __future__ import annotations

from typing import Any


def measured_today() -> dict[str, Any]:
    """Every figure and reference the targets read, at values that meet every target; each figure's runs
    all alike (the start-up ratios divide the fastest runs, from "spread")."""
    figures = {
        "binding.completions_per_s": 300.0,
        "binding.bare_per_s": 11_000.0,
        "binding.p99_ms": 75.0,
        "binding.bare_p99_ms": 2.7,
        "agent.overhead_p50_ms": 5.0,
        "agent.bare_p50_ms": 0.25,
        "agent.overhead_p99_ms": 6.0,
        "agent.bare_p99_ms": 0.5,
        "agent.workload_token_calls_per_100": 0.0,
        "agent.outbound_token_calls_per_100": 0.0,
        "startup.handler_import_ms": 300.0,
        "startup.fastapi_import_ms": 200.0,
        "startup.binding_healthy_ms": 400.0,
        "startup.agent_healthy_ms": 420.0,
        "startup.bare_healthy_ms": 300.0,
        "memory.binding_growth_mb": 0.2,
        "memory.binding_peak_rss_mb": 100.0,
        "memory.agent_growth_mb": 0.1,
        "memory.agent_peak_rss_mb": 98.0,
    }
    return {**figures, "spread": {key: {"median": value, "min": value, "max": value, "runs": 3} for key, value in figures.items()}}
