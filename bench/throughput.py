"""Throughput: 2,000 workflows enqueued at once, 2 worker processes; Stepwise vs a plain chain.

The worker starts listening on an idle queue. For each side the whole batch is
enqueued first (for Stepwise: the runs recorded in Postgres and their chains
sent), then the worker is told to consume the ``celery`` queue; the clock runs
from that order to the last run's completion hook. The sides alternate twice
(plain, stepwise, plain, stepwise) and the better round of each is kept.

    python -m bench.throughput [--smoke]
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from bench.harness import Worker, consume_all, parse_args, report, table, wait_until
from bench.services import scratch

STEPS = 3


def main() -> None:
    args = parse_args(__doc__ or "")
    n, rounds = (40, 1) if args.smoke else (2000, 2)
    with scratch() as s, Worker(s.env, concurrency=2, queues="bench_idle") as worker:
        import redis
        from celery import chain

        from app.runtime import get_manager
        from bench.workflows import DONE_KEY, PLAIN_TASKS
        from workers.celery_app import app

        manager = get_manager()
        r = redis.Redis.from_url(s.redis_url)

        def enqueue_plain() -> None:
            for _ in range(n):
                run_id = str(uuid.uuid4())
                chain(
                    *(app.signature(t, args=(run_id,), immutable=True) for t in PLAIN_TASKS)
                ).apply_async()

        def enqueue_durable() -> None:
            for _ in range(n):
                manager.start("bench_noop", {})

        def drain(enqueue: Any) -> float:
            r.delete(DONE_KEY)
            enqueue()
            t0 = time.time()
            consume_all(app, worker.node)
            wait_until(lambda: r.llen(DONE_KEY) >= n, timeout=600, what=f"{n} runs", interval=0.05)
            for queue in app.conf.task_queues:
                app.control.cancel_consumer(
                    queue.name, destination=[worker.node], reply=True, timeout=10
                )
            last = max(json.loads(x)["t"] for x in r.lrange(DONE_KEY, 0, -1))
            return last - t0

        drain(enqueue_plain)  # warm both sides' processes and pools
        drain(enqueue_durable)
        plain_times, durable_times = [], []
        for _ in range(rounds):
            plain_times.append(drain(enqueue_plain))
            durable_times.append(drain(enqueue_durable))
        plain_s, durable_s = min(plain_times), min(durable_times)

    result = build_result(n, plain_s, durable_s, args.smoke)
    report(render(result), result)


def build_result(n: int, plain_s: float, durable_s: float, smoke: bool) -> dict[str, Any]:
    plain_wps, durable_wps = n / plain_s, n / durable_s
    return {
        "bench": "throughput",
        "smoke": smoke,
        "workflows": n,
        "worker_processes": 2,
        "seconds": {"plain": round(plain_s, 3), "stepwise": round(durable_s, 3)},
        "workflows_per_s": {"plain": round(plain_wps, 1), "stepwise": round(durable_wps, 1)},
        "steps_per_s": {
            "plain": round(plain_wps * STEPS, 1),
            "stepwise": round(durable_wps * STEPS, 1),
        },
        "ratio": round(durable_wps / plain_wps, 3),
        "target_ratio": 0.6,
    }


def render(result: dict[str, Any]) -> str:
    w, st, sec = result["workflows_per_s"], result["steps_per_s"], result["seconds"]
    rows = [
        ["plain chain", sec["plain"], w["plain"], st["plain"]],
        ["stepwise", sec["stepwise"], w["stepwise"], st["stepwise"]],
        ["ratio", "", result["ratio"], result["ratio"]],
    ]
    return table(
        f"throughput, {result['workflows']} workflows enqueued at once, 2 worker processes",
        ["side", "seconds", "workflows/s", "steps/s"],
        rows,
    )


if __name__ == "__main__":
    main()
