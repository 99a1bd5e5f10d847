"""Recovery: time from SIGKILL of a worker holding N runs mid-step to all N succeeded.

Worker A (concurrency N) takes N runs of ``bench_hang``, whose second step hangs
on its first attempt. Once all N are inside that step, A and its pool children
are SIGKILLed together (a lost machine: nothing is acked, nothing is rejected)
and a standby worker B starts consuming. The recovery sweep
(``manager.recover()``, the beat job's body) runs every
``WORKFLOW_RECOVERY_INTERVAL`` seconds from this process; it re-sends each run
once its lease has expired, and B finishes it. The figure is reported relative
to ``WORKFLOW_STEP_TIMEOUT``. The scenario runs twice: alone, and with a backlog
of 10,000 queued steps of another workflow (``bench_noop1``) sent while every
slot was busy, which the standby drains at the same time; the second reports
how much of the backlog was still queued when the killed runs had all recovered.

    python -m bench.recovery [--smoke]
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from bench.harness import Worker, consume_all, parse_args, report, table, wait_until
from bench.services import scratch

BACKLOG_RUNS = """
INSERT INTO workflow_runs (id, name, status, input, created_at, updated_at)
SELECT gen_random_uuid(), 'bench_noop1', 'pending', '{}'::jsonb, now(), now()
FROM generate_series(1, :n)
RETURNING id
"""
BACKLOG_STEPS = """
INSERT INTO workflow_steps (run_id, position, name, status, attempts, after, dispatched_at)
SELECT id, 0, 'only', 'pending', 0, ARRAY[]::text[], now() FROM workflow_runs
WHERE name = 'bench_noop1' AND status = 'pending'
ON CONFLICT DO NOTHING
"""


def main() -> None:
    args = parse_args(__doc__ or "")
    n, timeout, interval = (2, 2.0, 0.5) if args.smoke else (8, 10.0, 1.0)
    backlog = 50 if args.smoke else 10_000
    env = {
        "WORKFLOW_STEP_TIMEOUT": f"{timeout:g}",
        # a run is a candidate once untouched this long; the lease decides for running steps
        "WORKFLOW_RECOVERY_GRACE": f"{timeout:g}",
        "WORKFLOW_RECOVERY_INTERVAL": f"{interval:g}",
    }
    scenarios = []
    with scratch(**env) as s:
        for queued in (0, backlog):
            scenarios.append(scenario(s, n, timeout, interval, queued))
    from app.engine.timing import lease_seconds

    first = scenarios[0]
    result = {
        "bench": "recovery",
        "smoke": args.smoke,
        "runs": n,
        "step_timeout_s": timeout,
        "lease_s": lease_seconds(timeout),
        "recovery_interval_s": interval,
        "recovery_s": first["recovery_s"],
        "ratio_to_step_timeout": first["ratio_to_step_timeout"],
        "sweeps": first["sweeps"],
        "target_ratio": 2.0,
        "scenarios": scenarios,
    }
    report(render(result), result)


def scenario(s: Any, n: int, timeout: float, interval: float, queued: int) -> dict[str, Any]:
    """Kill a worker holding ``n`` runs mid-step, with ``queued`` other steps waiting."""
    import redis

    from app.engine.models import runs
    from app.messaging import step_queue
    from app.runtime import get_manager
    from bench.workflows import ARRIVED_KEY
    from workers.celery_app import app

    manager = get_manager()
    r = redis.Redis.from_url(s.redis_url)
    r.delete(ARRIVED_KEY)
    with (
        Worker(s.env, concurrency=2, queues="bench_idle") as standby,
        Worker(s.env, concurrency=n) as doomed,
    ):
        ids = [manager.start("bench_hang", {}).run["id"] for _ in range(n)]
        wait_until(lambda: r.scard(ARRIVED_KEY) >= n, timeout=60, what="all runs mid-step")
        # a backlog of another workflow's steps, queued while every worker slot is busy
        with manager.engine.begin() as c:
            queued_ids = [row.id for row in c.execute(sa.text(BACKLOG_RUNS), {"n": queued})]
            c.execute(sa.text(BACKLOG_STEPS))
        only = "bench_noop1.only"
        for run_id in queued_ids:
            app.signature(only, args=(str(run_id),), immutable=True,
                          queue=step_queue(only)).apply_async()

        doomed.kill()
        t0 = time.monotonic()
        consume_all(app, standby.node)
        sweeps = 0

        def count(which: list[Any]) -> int:
            if not which:
                return 0
            with manager.engine.connect() as c:
                return int(c.execute(sa.select(sa.func.count()).where(
                    runs.c.id.in_(which), runs.c.status == "succeeded")).scalar_one())

        def all_succeeded() -> bool:
            nonlocal sweeps
            if count(ids) >= n:
                return True
            manager.recover()
            sweeps += 1
            return False

        wait_until(all_succeeded, timeout=timeout * 10 + 120, what="recovery", interval=interval)
        elapsed = time.monotonic() - t0
        backlog_left = len(queued_ids) - count(queued_ids)
        wait_until(lambda: count(queued_ids) >= len(queued_ids), timeout=600,
                   what="the backlog to drain", interval=1.0)
        drained = time.monotonic() - t0
    return {
        "backlog": queued,
        "recovery_s": round(elapsed, 3),
        "ratio_to_step_timeout": round(elapsed / timeout, 3),
        "sweeps": sweeps,
        "backlog_left_at_recovery": backlog_left,
        "backlog_drained_s": round(drained, 3),
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        [
            sc["backlog"],
            result["runs"],
            result["step_timeout_s"],
            result["lease_s"],
            result["recovery_interval_s"],
            sc["recovery_s"],
            sc["ratio_to_step_timeout"],
            sc["backlog_left_at_recovery"],
            sc["backlog_drained_s"],
        ]
        for sc in result["scenarios"]
    ]
    return table(
        "recovery after SIGKILL of a worker holding runs mid-step",
        ["queued steps", "runs", "step timeout s", "lease s", "sweep every s",
         "recovered in s", "× timeout", "backlog left then", "backlog drained in s"],
        rows,
    )


if __name__ == "__main__":
    main()
