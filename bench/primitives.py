"""The cost of a join and of a signal, and how many waiting runs one Postgres holds.

- **Join**: four no-op steps as a line (a → b → c → d) and as a diamond (a → b, c
  → d: two branches sent at once, the join sent by whichever branch's checkpoint
  sees the other done), run one at a time, alternating; the join's cost is the
  diamond's latency minus the line's.
- **Signal**: a run waits for signal ``go`` (``waiting``, no worker slot); the
  figure is from ``manager.signal()`` to the run's last step done, and the call
  itself.
- **Waiting runs**: 0, 1k, 10k (100k without ``--smoke``: 1k, 10k) runs parked in
  ``wait_for_signal``, generated in SQL; with each, the latency of a 3-step no-op
  run and one recovery sweep — flat if waiting runs cost the rest nothing.

    python -m bench.primitives [--smoke]
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from bench.harness import Worker, parse_args, report, summary_ms, table
from bench.services import scratch

PARKED = """
WITH runs AS (
    INSERT INTO workflow_runs (id, name, status, input, created_at, updated_at, started_at)
    SELECT gen_random_uuid(), 'bench_signal', 'running', '{}'::jsonb, now(), now(), now()
    FROM generate_series(1, :n)
    RETURNING id
)
INSERT INTO workflow_steps (run_id, position, name, status, attempts, kind, signal, after,
                            started_at, finished_at, wake_at, output)
SELECT r.id, p.p, p.name, p.status, p.attempts, p.kind, p.signal, p.after,
       CASE WHEN p.p <= 1 THEN now() END, CASE WHEN p.p = 0 THEN now() END,
       CASE WHEN p.p = 1 THEN now() + interval '7 days' END,
       CASE WHEN p.p = 0 THEN 'null'::jsonb END
FROM runs r CROSS JOIN (VALUES
    (0, 'before', 'succeeded', 1, 'task', NULL, ARRAY[]::text[]),
    (1, 'wait_go', 'waiting', 1, 'signal', 'go', ARRAY['before']),
    (2, 'after', 'pending', 0, 'task', NULL, ARRAY['wait_go'])
) AS p(p, name, status, attempts, kind, signal, after)
"""


def main() -> None:
    args = parse_args(__doc__ or "")
    runs, warmup = (4, 2) if args.smoke else (150, 20)
    parked_sizes = (0, 1_000) if args.smoke else (0, 1_000, 10_000, 100_000)
    with scratch() as s, Worker(s.env, concurrency=2):
        import redis

        from app.runtime import get_manager
        from bench.workflows import DONE_KEY

        manager = get_manager()
        engine = manager.engine
        r = redis.Redis.from_url(s.redis_url)

        def wait_done(expected: str) -> None:
            while True:
                item = r.blpop([DONE_KEY], timeout=60)
                if item is None:
                    raise TimeoutError("a run did not finish within 60 s")
                if json.loads(item[1])["id"] == expected:
                    return

        def timed(name: str) -> float:
            t0 = time.perf_counter()
            run = manager.start(name, {}).run
            wait_done(str(run["id"]))
            return time.perf_counter() - t0

        def signal_once() -> tuple[float, float]:
            run_id = manager.start("bench_signal", {}).run["id"]
            deadline = time.monotonic() + 30
            while not any(st["name"] == "wait_go" and st["status"] == "waiting"
                          for st in manager.get(run_id)["steps"]):
                if time.monotonic() > deadline:
                    raise TimeoutError("the run never reached its wait")
                time.sleep(0.005)
            t0 = time.perf_counter()
            manager.signal(run_id, "go", {"by": "bench"})
            call = time.perf_counter() - t0
            wait_done(str(run_id))
            return call, time.perf_counter() - t0

        for _ in range(warmup):
            timed("bench_line4")
            timed("bench_diamond")
        line, dia = [], []
        for _ in range(runs):
            line.append(timed("bench_line4"))
            dia.append(timed("bench_diamond"))
        signals = [signal_once() for _ in range(max(runs // 3, 3))]

        waiting_rows = []
        parked_total = 0
        for size in parked_sizes:
            if size > parked_total:
                with engine.begin() as c:
                    c.execute(sa.text(PARKED), {"n": size - parked_total})
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.exec_driver_sql("VACUUM ANALYZE workflow_runs")
                    c.exec_driver_sql("VACUUM ANALYZE workflow_steps")
                parked_total = size
            lat = [timed("bench_noop") for _ in range(max(runs // 3, 3))]
            sweeps = []
            for _ in range(5):
                t0 = time.perf_counter()
                manager.recover()
                sweeps.append(time.perf_counter() - t0)
            waiting_rows.append((size, summary_ms(lat), summary_ms(sweeps)))

    line_s, dia_s = summary_ms(line), summary_ms(dia)
    sig_call = summary_ms([c for c, _ in signals])
    sig_done = summary_ms([d for _, d in signals])
    result: dict[str, Any] = {
        "bench": "primitives", "smoke": args.smoke,
        "line4": line_s, "diamond": dia_s,
        "join_cost_p50_ms": round(dia_s["p50_ms"] - line_s["p50_ms"], 3),
        "signal_call": sig_call, "signal_to_done": sig_done,
        "waiting": {str(n): {"noop3": lat, "sweep": sw} for n, lat, sw in waiting_rows},
    }
    text = "\n\n".join([
        table(f"Join: 4 no-op steps, {runs} runs each, alternating",
              ["shape", "p50 ms", "p95 ms", "p99 ms"],
              [["line a→b→c→d", line_s["p50_ms"], line_s["p95_ms"], line_s["p99_ms"]],
               ["diamond a→(b,c)→d", dia_s["p50_ms"], dia_s["p95_ms"], dia_s["p99_ms"]]]),
        table(f"Signal: {len(signals)} deliveries to a waiting run",
              ["measure", "p50 ms", "p95 ms"],
              [["manager.signal() call", sig_call["p50_ms"], sig_call["p95_ms"]],
               ["signal → run's last step done", sig_done["p50_ms"], sig_done["p95_ms"]]]),
        table("Waiting runs parked in wait_for_signal, and everything else",
              ["waiting runs", "3-step run p50 ms", "p95 ms", "sweep p50 ms", "sweep p99 ms"],
              [[n, lat["p50_ms"], lat["p95_ms"], sw["p50_ms"], sw["p99_ms"]]
               for n, lat, sw in waiting_rows]),
    ])
    report(text, result)


if __name__ == "__main__":
    main()
