"""Recovery: time from SIGKILL of a worker holding N runs mid-step to all N succeeded.

Worker A (concurrency N) takes N runs of ``bench_hang``, whose second step hangs
on its first attempt. Once all N are inside that step, A and its pool children
are SIGKILLed together (a lost machine: nothing is acked, nothing is rejected)
and a standby worker B starts consuming. The recovery sweep
(``manager.recover()``, the beat job's body) runs every
``WORKFLOW_RECOVERY_INTERVAL`` seconds from this process; it re-sends each run
once its lease has expired, and B finishes it. The figure is reported relative
to ``WORKFLOW_STEP_TIMEOUT``.

    python -m bench.recovery [--smoke]
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from bench.harness import Worker, consume_all, parse_args, report, table, wait_until
from bench.services import scratch


def main() -> None:
    args = parse_args(__doc__ or "")
    n, timeout, interval = (2, 2.0, 0.5) if args.smoke else (8, 10.0, 1.0)
    env = {
        "WORKFLOW_STEP_TIMEOUT": f"{timeout:g}",
        # a run is a candidate once untouched this long; the lease decides for running steps
        "WORKFLOW_RECOVERY_GRACE": f"{timeout:g}",
        "WORKFLOW_RECOVERY_INTERVAL": f"{interval:g}",
    }
    with (
        scratch(**env) as s,
        Worker(s.env, concurrency=2, queues="bench_idle") as standby,
        Worker(s.env, concurrency=n) as doomed,
    ):
        import redis

        from app.engine.models import runs
        from app.engine.timing import lease_seconds
        from app.runtime import get_manager
        from bench.workflows import ARRIVED_KEY
        from workers.celery_app import app

        manager = get_manager()
        r = redis.Redis.from_url(s.redis_url)
        ids = [manager.start("bench_hang", {}).run["id"] for _ in range(n)]
        wait_until(lambda: r.scard(ARRIVED_KEY) >= n, timeout=60, what="all runs mid-step")

        doomed.kill()
        t0 = time.monotonic()
        consume_all(app, standby.node)
        sweeps = 0

        def all_succeeded() -> bool:
            nonlocal sweeps
            with manager.engine.connect() as c:
                done = c.execute(
                    sa.select(sa.func.count()).where(
                        runs.c.id.in_(ids), runs.c.status == "succeeded"
                    )
                ).scalar_one()
            if done >= n:
                return True
            manager.recover()
            sweeps += 1
            return False

        wait_until(all_succeeded, timeout=timeout * 10 + 60, what="recovery", interval=interval)
        elapsed = time.monotonic() - t0
        lease = lease_seconds(timeout)

    result = {
        "bench": "recovery",
        "smoke": args.smoke,
        "runs": n,
        "step_timeout_s": timeout,
        "lease_s": lease,
        "recovery_interval_s": interval,
        "recovery_s": round(elapsed, 3),
        "ratio_to_step_timeout": round(elapsed / timeout, 3),
        "sweeps": sweeps,
        "target_ratio": 2.0,
    }
    report(render(result), result)


def render(result: dict[str, Any]) -> str:
    rows = [
        [
            result["runs"],
            result["step_timeout_s"],
            result["lease_s"],
            result["recovery_interval_s"],
            result["recovery_s"],
            result["ratio_to_step_timeout"],
        ]
    ]
    return table(
        "recovery after SIGKILL of a worker holding runs mid-step",
        ["runs", "step timeout s", "lease s", "sweep every s", "recovered in s", "× timeout"],
        rows,
    )


if __name__ == "__main__":
    main()
