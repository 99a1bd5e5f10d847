"""``bench.notify`` in smoke mode: it measures every set-up end to end (figures not asserted)."""

from __future__ import annotations

from tests.bench.test_bench_smoke import run_bench


def test_notify_bench_times_commits_with_and_without_the_trigger() -> None:
    result = run_bench("notify")
    for setup in ("no_trigger", "trigger", "trigger_and_listener", "status_only_and_listener"):
        for clients in (1, 4):
            assert result[f"{setup}_{clients}"]["commits_per_s"] > 0
