"""Batch start: ``start_many`` of N runs vs N sequential ``start`` calls (issue 15).

Both sides start the 3-step ``bench_noop`` workflow from Python in this process:
record the runs and their steps, then send each run's chain to the broker. No
worker runs (the messages wait in the scratch Redis database, flushed at the
end), so this is the start path alone: N transactions and N sends one after
another, against one transaction of two statements and the same N sends. The
sends go through the manager's sender thread (``app.engine.outbox``); each side's
clock stops once they are all published (``flush_sends``), not when the calls return.
Rounds alternate the two sides so load from elsewhere on the machine hits both
alike; the median round of each is reported.

    python -m bench.batch [--smoke]
"""

from __future__ import annotations

import statistics
import time

import sqlalchemy as sa

from bench.harness import parse_args, report, table
from bench.services import scratch

WORKFLOW = "bench_noop"


def main() -> None:
    args = parse_args(__doc__ or "")
    runs, rounds = (50, 1) if args.smoke else (1000, 5)
    with scratch():
        from app.runtime import get_manager

        manager = get_manager()
        manager.start(WORKFLOW, {})  # warm the pool, the broker connection and the registry
        manager.flush_sends()

        def sequential() -> float:
            t0 = time.perf_counter()
            for _ in range(runs):
                manager.start(WORKFLOW, {})
            assert manager.flush_sends(timeout=60), "chains not published within 60 s"
            return time.perf_counter() - t0

        def batched() -> float:
            t0 = time.perf_counter()
            results = manager.start_many(WORKFLOW, [{"input": {}}] * runs)
            assert manager.flush_sends(timeout=60), "chains not published within 60 s"
            elapsed = time.perf_counter() - t0
            assert sum(r.created for r in results) == runs
            return elapsed

        timings: dict[str, list[float]] = {"sequential start": [], "start_many": []}
        for _ in range(rounds):
            timings["sequential start"].append(sequential())
            timings["start_many"].append(batched())
        with manager.engine.connect() as c:
            recorded = int(c.execute(sa.text("SELECT count(*) FROM workflow_runs")).scalar_one())
        assert recorded == 1 + 2 * runs * rounds

    median = {side: statistics.median(values) for side, values in timings.items()}
    per_s = {side: round(runs / seconds, 1) for side, seconds in median.items()}
    result = {
        "bench": "batch",
        "smoke": args.smoke,
        "runs_per_call": runs,
        "rounds": rounds,
        "runs_per_s": per_s,
        "median_s": {side: round(seconds, 4) for side, seconds in median.items()},
        "speedup": round(per_s["start_many"] / per_s["sequential start"], 2),
    }
    text = table(
        f"batch start: {runs} {WORKFLOW} runs, median of {rounds} round(s)",
        ["side", "seconds", "runs/s"],
        [[side, median[side], per_s[side]] for side in timings],
    )
    report(f"{text}\nstart_many / sequential: {result['speedup']}x", result)


if __name__ == "__main__":
    main()
