"""Per-step latency: a 3-step no-op workflow, one at a time, Stepwise vs a plain chain.

Both sides run in the same worker, alternating run by run so that load from
elsewhere on the machine hits both alike. A run's latency is from the call that
starts it (``manager.start`` / ``chain.apply_async``) to the last task's
completion hook; per-step figures are that divided by 3. Commits per step are
the writing transactions committed in the scratch database over the Stepwise
runs (the start transaction included; counted from the WAL with pg_walinspect)
divided by the steps run; ``transactions_per_step`` is the ``xact_commit`` delta,
which also counts read-only transactions such as the pool's pre-ping.

    python -m bench.latency [--smoke]
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import sqlalchemy as sa

from bench.harness import (
    Worker,
    parse_args,
    report,
    summary_ms,
    table,
    wait_until,
    wal_flush_lsn,
    writing_commits,
    xact_commits,
)
from bench.services import scratch

STEPS = 3


def main() -> None:
    args = parse_args(__doc__ or "")
    runs, warmup = (6, 2) if args.smoke else (300, 30)
    with scratch() as s, Worker(s.env, concurrency=2):
        import redis
        from celery import chain

        from app.runtime import get_manager
        from bench.workflows import DONE_KEY, PLAIN_TASKS
        from workers.celery_app import app

        manager = get_manager()
        r = redis.Redis.from_url(s.redis_url)

        def wait_done(expected: str) -> None:
            item = r.blpop([DONE_KEY], timeout=60)
            if item is None:
                raise TimeoutError("a run did not finish within 60 s")
            got = json.loads(item[1])["id"]
            if got != expected:
                raise RuntimeError(f"finished {got}, expected {expected}")

        def durable() -> float:
            t0 = time.perf_counter()
            run = manager.start("bench_noop", {}).run
            wait_done(str(run["id"]))
            return time.perf_counter() - t0

        def plain() -> float:
            run_id = str(uuid.uuid4())
            t0 = time.perf_counter()
            chain(
                *(app.signature(n, args=(run_id,), immutable=True) for n in PLAIN_TASKS)
            ).apply_async()
            wait_done(run_id)
            return time.perf_counter() - t0

        for _ in range(warmup):
            plain()
            durable()
        before = settled_commits(s.db_name)
        start_lsn = wal_flush_lsn()
        durable_times: list[float] = []
        plain_times: list[float] = []
        for _ in range(runs):
            plain_times.append(plain())
            durable_times.append(durable())
        manager.engine.dispose()
        transactions = settled_commits(s.db_name) - before
        commits = writing_commits(s.database_url, start_lsn)
        commit_ms = insert_commit_ms(s.database_url, 50 if args.smoke else 300)

    result = build_result(
        durable_times, plain_times, commits, transactions, runs, commit_ms, args.smoke
    )
    report(render(result), result)


def settled_commits(db_name: str) -> int:
    """``xact_commit`` once idle backends have flushed their counters (≤ 1 s in PG 15)."""
    last = xact_commits(db_name)
    stable_since = time.monotonic()

    def settled() -> bool:
        nonlocal last, stable_since
        now = xact_commits(db_name)
        if now != last:
            last, stable_since = now, time.monotonic()
        return time.monotonic() - stable_since > 1.5

    wait_until(settled, timeout=30, what="commit counters to settle", interval=0.2)
    return last


def insert_commit_ms(url: str, n: int) -> float:
    """For scale: one INSERT + COMMIT over loopback, median in ms."""
    import statistics

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    times = []
    with engine.connect() as c:
        c.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial, t text)")
        c.commit()
        for _ in range(n):
            t0 = time.perf_counter()
            c.exec_driver_sql("INSERT INTO bench_commit (t) VALUES ('x')")
            c.commit()
            times.append(time.perf_counter() - t0)
    engine.dispose()
    return round(statistics.median(times) * 1000, 3)


def build_result(
    durable: list[float],
    plain: list[float],
    commits: int,
    transactions: int,
    runs: int,
    commit_ms: float,
    smoke: bool,
) -> dict[str, Any]:
    d, p = summary_ms(durable), summary_ms(plain)
    per_step = {
        side: {k: round(v / STEPS, 3) for k, v in figures.items()}
        for side, figures in (("stepwise", d), ("plain", p))
    }
    return {
        "bench": "latency",
        "smoke": smoke,
        "runs_per_side": runs,
        "workflow_ms": {"stepwise": d, "plain": p},
        "per_step_ms": per_step,
        "ratio_p50": round(d["p50_ms"] / p["p50_ms"], 3),
        "ratio_p95": round(d["p95_ms"] / p["p95_ms"], 3),
        "commits_per_step": round(commits / (runs * STEPS), 3),
        "commits_per_run": round(commits / runs, 3),
        "transactions_per_step": round(transactions / (runs * STEPS), 3),
        "insert_commit_ms": commit_ms,
        "target_ratio": 1.4,
        "target_commits_per_step": 2,
    }


def render(result: dict[str, Any]) -> str:
    d, p = result["per_step_ms"]["stepwise"], result["per_step_ms"]["plain"]
    rows = [
        ["plain chain", p["p50_ms"], p["p95_ms"], ""],
        [
            "stepwise",
            d["p50_ms"],
            d["p95_ms"],
            f"{result['commits_per_step']} (+ read-only: {result['transactions_per_step']} txns)",
        ],
        ["ratio", result["ratio_p50"], result["ratio_p95"], ""],
    ]
    return table(
        f"per-step latency, 3-step no-op workflow, {result['runs_per_side']} runs per side "
        f"(insert+commit: {result['insert_commit_ms']} ms)",
        ["side", "p50 ms/step", "p95 ms/step", "commits/step"],
        rows,
    )


if __name__ == "__main__":
    main()
