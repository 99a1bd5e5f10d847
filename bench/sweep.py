"""The recovery sweep at 1k, 10k and 100k healthy active runs plus a few stuck ones.

Healthy active runs are what a sweep must not pay for: half sleep for a day
(a ``waiting`` step with ``wake_at`` tomorrow), half run a long step (a lease
that expires in an hour); each has a succeeded first step. Five runs are stuck,
one of each kind the sweep handles and two lost: an expired lease, a due retry
nobody sent, a pending step whose message is ten minutes old. Rows are
generated in SQL. Each sweep is ``manager.recover()`` (the beat job's body) with a
recording dispatcher instead of a broker; after it, the stuck rows are made stuck
again so every sweep does the same work. Reported per size: sweep time
(p50/p99 over the repetitions), the shared buffers its two candidate queries
touch (``EXPLAIN (ANALYZE, BUFFERS)``: stuck steps, and stranded runs with every
step done), and how many of the stuck runs each sweep handled (all five).

    python -m bench.sweep [--smoke]
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from bench.harness import parse_args, report, summary_ms, table
from bench.services import scratch

RUNS = """
INSERT INTO workflow_runs (id, name, status, input, created_at, updated_at, started_at)
SELECT gen_random_uuid(), 'signup', 'running', '{}'::jsonb,
       now() - interval '2 hours', now() - interval '2 hours', now() - interval '2 hours'
FROM generate_series(1, :n)
"""
STEPS = """
INSERT INTO workflow_steps (run_id, position, name, status, attempts, kind, after,
                            started_at, finished_at, lease_expires_at, wake_at, lease_owner)
SELECT r.id, p.p, 'step_' || p.p,
       CASE WHEN p.p = 0 THEN 'succeeded' WHEN p.p = 1 AND r.n % 2 = 0 THEN 'waiting'
            WHEN p.p = 1 THEN 'running' ELSE 'pending' END,
       CASE WHEN p.p <= 1 THEN 1 ELSE 0 END,
       CASE WHEN p.p = 1 AND r.n % 2 = 0 THEN 'sleep' ELSE 'task' END,
       CASE WHEN p.p = 0 THEN ARRAY[]::text[] ELSE ARRAY['step_' || (p.p - 1)] END,
       CASE WHEN p.p <= 1 THEN now() - interval '2 hours' END,
       CASE WHEN p.p = 0 THEN now() - interval '2 hours' END,
       CASE WHEN p.p = 1 AND r.n % 2 = 1 THEN now() + interval '1 hour' END,
       CASE WHEN p.p = 1 AND r.n % 2 = 0 THEN now() + interval '1 day' END,
       CASE WHEN p.p = 1 AND r.n % 2 = 1 THEN 'bench:1:x' END
FROM (SELECT id, row_number() OVER () AS n FROM workflow_runs WHERE status = 'running') r
CROSS JOIN generate_series(0, 2) AS p(p)
"""
STUCK = 5
MAKE_STUCK = """
WITH picked AS (
    SELECT run_id, row_number() OVER (ORDER BY run_id) AS k FROM workflow_steps
    WHERE name = 'step_1' AND kind = 'task' ORDER BY run_id LIMIT 5
)
UPDATE workflow_steps s SET
    status = CASE WHEN p.k = 1 THEN 'running' WHEN p.k = 2 THEN 'retrying' ELSE 'pending' END,
    lease_expires_at = CASE WHEN p.k = 1 THEN now() - interval '1 minute' END,
    next_attempt_at = CASE WHEN p.k = 2 THEN now() - interval '1 minute' END,
    dispatched_at = CASE WHEN p.k >= 3 THEN now() - interval '10 minutes' END,
    lease_owner = CASE WHEN p.k = 1 THEN 'bench:1:dead' END
FROM picked p WHERE s.run_id = p.run_id AND s.name = 'step_1'
"""
# a dead-lettered run (the expired lease, past its recovery limit) becomes live again
REVIVE = """
UPDATE workflow_runs SET status = 'running', error = NULL, recovery_count = 0, finished_at = NULL
WHERE id IN (SELECT run_id FROM workflow_steps WHERE name = 'step_1' AND kind = 'task'
             ORDER BY run_id LIMIT 5)
"""


def explain_buffers(conn: Any, statement: Any, params: dict[str, Any]) -> int:
    sql = str(statement.compile(compile_kwargs={"literal_binds": False}))
    plan = conn.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"), params).scalar()
    top = plan[0]["Plan"]
    return int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0))


def main() -> None:
    args = parse_args(__doc__ or "")
    sizes, reps = ((200, 1_000), 3) if args.smoke else ((1_000, 10_000, 100_000), 30)
    rows: list[list[Any]] = []
    result: dict[str, Any] = {}
    with scratch(WORKFLOW_RECOVERY_GRACE="30") as s:
        from app.engine import recovery
        from app.engine.db import get_engine
        from app.runtime import build_manager
        from app.settings import get_settings

        engine = get_engine(s.database_url)
        sent: list[Any] = []
        manager = build_manager(get_settings(), dispatch=lambda run, wf, names: sent.append(run))
        for size in sizes:
            with engine.begin() as c:
                c.execute(sa.text("DELETE FROM workflow_runs"))
                c.execute(sa.text(RUNS), {"n": size})
                c.execute(sa.text(STEPS))
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                # the previous size's rows are gone: measure this size, not their dead tuples
                c.execute(sa.text("VACUUM ANALYZE workflow_runs"))
                c.execute(sa.text("VACUUM ANALYZE workflow_steps"))
            times, handled = [], []
            for _ in range(reps):
                with engine.begin() as c:
                    c.execute(sa.text(REVIVE))
                    c.execute(sa.text(MAKE_STUCK))
                sent.clear()
                began = time.perf_counter()
                swept = manager.recover()
                times.append(time.perf_counter() - began)
                handled.append(len(swept.resent) + len(swept.dead_lettered))
            params = {"batch": 500, "grace": manager.recovery_grace}
            with engine.begin() as c:
                c.execute(sa.text(MAKE_STUCK))
                stuck_buffers = explain_buffers(c, recovery._STUCK, params)
                stranded_buffers = explain_buffers(c, recovery._STRANDED, {
                    **params, "slice": recovery.STRANDED_SLICE, "after_at": None, "after_id": None,
                })
                c.rollback()
            stats = summary_ms(times)
            rows.append([size, STUCK, stats["p50_ms"], stats["p99_ms"], stuck_buffers,
                         stranded_buffers, min(handled)])
            result[str(size)] = {**stats, "stuck_query_buffers": stuck_buffers,
                                 "stranded_query_buffers": stranded_buffers,
                                 "handled_min": min(handled)}
    report(
        table(
            f"Recovery sweep with healthy active runs (+{STUCK} stuck), {reps} sweeps per size",
            ["active runs", "stuck", "p50 ms", "p99 ms", "stuck-query buffers",
             "stranded-query buffers", "stuck handled"],
            rows,
        ),
        {"bench": "sweep", "smoke": args.smoke, "sizes": result},
    )


if __name__ == "__main__":
    main()
