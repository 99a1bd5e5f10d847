"""Scale: status, list and filter queries with 1,000,000 runs in ``workflow_runs``.

The runs (and their 3 steps each) are generated in SQL with ``generate_series``:
four workflow names, 90 % succeeded, 4 % failed, 2 % cancelled, the newest
2,000 active (and recently touched, as live runs are), created over 30 days.
Each query is the manager's own (what the API and the sweep call), timed end to
end from Python; its SQL is captured and ``EXPLAIN``ed to show which index it uses.
The search and filter queries of the operator's console are in ``bench.scale_search``.

    python -m bench.scale [--smoke]
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bench.harness import parse_args, report, summary_ms, table
from bench.scale_search import search_queries
from bench.services import scratch

GENERATE_RUNS = """
INSERT INTO workflow_runs (id, name, status, input, output, error, idempotency_key,
                           created_at, updated_at, started_at, finished_at)
SELECT gen_random_uuid(),
       (ARRAY['signup', 'order', 'invoice', 'report'])[1 + i % 4],
       st,
       jsonb_build_object('n', i, 'email', 'user' || i || '@example.com',
                          'plan', CASE WHEN i % 5 < 2 THEN 'pro' ELSE 'free' END),
       CASE WHEN st = 'succeeded' THEN '{"ok": true}'::jsonb END,
       CASE WHEN st = 'failed' THEN jsonb_build_object(
           'type', (ARRAY['Boom', 'Timeout', 'HTTP429'])[1 + i % 3], 'message', 'failed') END,
       CASE WHEN i % 2 = 0 THEN 'key-' || i END,
       t,
       -- active runs are moving (recently touched), so the sweep has nothing to re-send
       CASE WHEN st IN ('pending', 'running') THEN now() ELSE t END,
       t, CASE WHEN st IN ('succeeded', 'failed', 'cancelled') THEN t END
FROM (
    SELECT i,
           now() - make_interval(secs => (:n - i) * (2592000.0 / :n)) AS t,
           CASE WHEN i > :n - 1000 THEN 'running'
                WHEN i > :n - 2000 THEN 'pending'
                WHEN i % 100 < 4 THEN 'failed'
                WHEN i % 100 < 6 THEN 'cancelled'
                ELSE 'succeeded' END AS st
    FROM generate_series(1, :n) AS i
) AS g
"""

GENERATE_STEPS = """
INSERT INTO workflow_steps (run_id, position, name, status, attempts, output, started_at,
                            finished_at, lease_expires_at, history)
SELECT r.id, p, 'step_' || p,
       CASE WHEN r.status = 'succeeded' THEN 'succeeded'
            WHEN r.status = 'failed' AND p = 1 THEN 'failed'
            WHEN r.status = 'running' AND p = 0 THEN 'running'
            WHEN p = 0 AND r.status <> 'pending' THEN 'succeeded'
            ELSE 'pending' END,
       1, '{"ok": true}'::jsonb, r.started_at, r.finished_at,
       CASE WHEN r.status = 'running' AND p = 0 THEN now() + interval '1 hour' END,
       -- a failed run's failing step keeps its three attempts, each with its error
       CASE WHEN r.status = 'failed' AND p = 1 THEN (
           SELECT jsonb_agg(jsonb_build_object(
               'attempt', a, 'status', 'failed',
               'error', jsonb_build_object('type', 'Boom', 'message', 'the API said 503',
                                           'attempt', a, 'retryable', a < 3),
               'started_at', r.started_at + make_interval(secs => a),
               'finished_at', r.started_at + make_interval(secs => a + 0.5)))
           FROM generate_series(1, 3) AS a)
       ELSE '[]'::jsonb END
FROM workflow_runs r CROSS JOIN generate_series(0, 2) AS p
"""


def main() -> None:
    args = parse_args(__doc__ or "")
    n, samples = (5_000, 20) if args.smoke else (1_000_000, 300)
    # live runs keep moving; a long grace keeps the sweep's figure about finding none
    with scratch(WORKFLOW_RECOVERY_GRACE="3600"):
        from app.engine.manager import encode_cursor
        from app.runtime import get_manager

        manager = get_manager()
        engine = manager.engine
        t0 = time.monotonic()
        with engine.begin() as c:
            c.execute(sa.text(GENERATE_RUNS), {"n": n})
            c.execute(sa.text(GENERATE_STEPS))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE workflow_runs")
            c.exec_driver_sql("VACUUM ANALYZE workflow_steps")
        generated_s = time.monotonic() - t0
        with engine.connect() as c:
            picked = c.execute(
                sa.text(
                    "SELECT id, created_at FROM workflow_runs TABLESAMPLE BERNOULLI (1) LIMIT 500"
                )
            ).all()
            failed = c.execute(
                sa.text(
                    "SELECT id FROM workflow_runs WHERE status = 'failed' "
                    "ORDER BY random() LIMIT 200"
                )
            ).all()
        rng = random.Random(7)

        def cursor() -> str:
            row = rng.choice(picked)
            return encode_cursor(row.created_at, row.id)

        queries: dict[str, Callable[[], Any]] = {
            "get run + steps (status)": lambda: manager.get(rng.choice(picked).id),
            "get failed run + 3-attempt history": lambda: manager.get(rng.choice(failed).id),
            "list newest 50": lambda: manager.list(limit=50),
            "list page at a cursor": lambda: manager.list(limit=50, cursor=cursor()),
            "filter status=failed": lambda: manager.list(status="failed", limit=50),
            "filter status=failed, page": lambda: manager.list(
                status="failed", limit=50, cursor=cursor()
            ),
            "filter name=order": lambda: manager.list(name="order", limit=50),
            "filter status+name": lambda: manager.list(status="failed", name="order", limit=50),
            "filter status=pending": lambda: manager.list(status="pending", limit=50),
            "recovery sweep": lambda: manager.recover(batch=500),
            "counts by status": manager.counts_by_status,
            **search_queries(manager, rng),
        }
        results: dict[str, dict[str, Any]] = {}
        for label, call in queries.items():
            call()  # warm the cache and capture nothing yet
            times = []
            for _ in range(samples):
                t = time.perf_counter()
                call()
                times.append(time.perf_counter() - t)
            statements = capture(engine, call)
            results[label] = {
                **summary_ms(times),
                "plans": [explain(engine, q) for q in statements],
            }

    result = {
        "bench": "scale",
        "smoke": args.smoke,
        "runs": n,
        "steps": n * 3,
        "generate_s": round(generated_s, 1),
        "samples": samples,
        "queries": {
            k: {m: v for m, v in r.items() if m != "plans"} | {"indexes": indexes(r["plans"])}
            for k, r in results.items()
        },
        "max_p99_ms": max(r["p99_ms"] for r in results.values()),
        "target_p99_ms": 20,
    }
    print_plans(results)
    report(render(result), result)


def capture(engine: sa.Engine, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def listener(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE")):
            seen.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    return seen


def explain(engine: sa.Engine, query: tuple[str, Any]) -> str:
    statement, params = query
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("EXPLAIN " + statement, params)
        plan = "\n".join(row[0] for row in cur.fetchall())
        raw.rollback()
    finally:
        raw.close()
    return plan


def indexes(plans: list[str]) -> list[str]:
    found: list[str] = []
    for plan in plans:
        for m in re.finditer(
            r"(Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)?"
            r" (?:using|on) (\w+)|Seq Scan on (\w+)",
            plan,
        ):
            name = m.group(2) if m.group(2) else f"SEQ SCAN {m.group(3)}"
            if name not in found:
                found.append(name)
    return found


def print_plans(results: dict[str, dict[str, Any]]) -> None:
    for label, r in results.items():
        print(f"--- EXPLAIN: {label}")
        for plan in r["plans"]:
            print(plan)
    print()


def render(result: dict[str, Any]) -> str:
    rows = [
        [label, q["p50_ms"], q["p99_ms"], ", ".join(q["indexes"])]
        for label, q in result["queries"].items()
    ]
    return table(
        f"queries at {result['runs']:,} runs / {result['steps']:,} steps "
        f"({result['samples']} samples each; generated in {result['generate_s']} s)",
        ["query", "p50 ms", "p99 ms", "plan uses"],
        rows,
    )


if __name__ == "__main__":
    main()
