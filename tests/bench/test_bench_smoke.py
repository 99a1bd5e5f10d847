"""The benchmarks in smoke mode: each script runs end to end against the real
services in a few seconds and ends with its JSON line, so they cannot rot.
The figures themselves are not asserted (see docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(name: str, timeout: float = 150) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"bench"')]
    assert lines, f"no JSON line in:\n{done.stdout[-3000:]}"
    result = json.loads(lines[-1])
    assert result["bench"] == name and result["smoke"] is True
    return result


def test_latency_bench_reports_both_sides_and_commits_per_step() -> None:
    result = run_bench("latency")
    assert result["per_step_ms"]["stepwise"]["p50_ms"] > 0
    assert result["per_step_ms"]["plain"]["p50_ms"] > 0
    assert result["commits_per_step"] > 0


def test_throughput_bench_reports_both_sides() -> None:
    result = run_bench("throughput")
    assert result["workflows_per_s"]["stepwise"] > 0 and result["workflows_per_s"]["plain"] > 0


def test_api_bench_reports_a_figure_or_says_why_not() -> None:
    result = run_bench("api")
    assert result.get("skipped") or result["requests"] > 0


def test_batch_bench_reports_both_ways_of_starting() -> None:
    result = run_bench("batch")
    assert result["runs_per_s"]["start_many"] > 0 and result["runs_per_s"]["sequential start"] > 0
    assert result["runs_per_call"] > 0


def test_scale_bench_shows_the_plans_indexes() -> None:
    result = run_bench("scale")
    assert result["queries"]["list newest 50"]["indexes"]
    assert "pk_workflow_runs" in result["queries"]["get failed run + 3-attempt history"]["indexes"]


@pytest.mark.timeout(240)
def test_recovery_bench_recovers_every_run_after_a_kill() -> None:
    result = run_bench("recovery")
    assert result["recovery_s"] > 0


def test_sweep_bench_handles_every_stuck_run_at_each_size() -> None:
    result = run_bench("sweep")
    assert set(result["sizes"]) == {"200", "1000"}
    assert all(size["handled_min"] == 5 for size in result["sizes"].values())


def test_primitives_bench_times_a_join_a_signal_and_runs_beside_waiting_ones() -> None:
    result = run_bench("primitives")
    assert result["diamond"]["p50_ms"] > 0 and result["signal_to_done"]["p50_ms"] > 0
    assert set(result["waiting"]) == {"0", "1000"}


def test_protocol_bench_reports_the_hot_path_per_step() -> None:
    result = run_bench("protocol")
    rounds = result["median_ms_per_step_by_round"]
    assert set(rounds) == {"current"}
    assert all(ms > 0 for ms in rounds["current"])


@pytest.mark.timeout(330)
def test_compare_bench_puts_every_system_side_by_side() -> None:
    """DBOS runs too when its venv exists or builds within two minutes (pip needs the
    package index); otherwise the report says why it was skipped."""
    result = run_bench("compare", timeout=320)
    expected = {"celery defaults", "celery project", "stepwise"}
    if "dbos" not in result["skipped"]:
        expected.add("dbos")
    assert set(result["systems"]) == expected
    for figures in result["systems"].values():
        assert figures["throughput_wps"] > 0
        assert figures["cpu_by_component_ms"]["workers"] > 0
    assert result["ratios"]["throughput stepwise/celery defaults"]["value"] > 0
    stepwise = result["counts"]["stepwise"]
    # issue 15's bound for a step's happy path: its checkpoint and at most one other statement
    assert 1 <= stepwise["per_step"]["statements_worker"] <= 2
