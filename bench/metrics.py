"""Metrics: what the counting triggers cost a step, and what a scrape costs at scale.

1. Hot path: runs of 3 steps walked through the protocol's statements, one
   commit each (claim pending→running, checkpoint running→succeeded with
   output, the run pending→running and running→succeeded), with the triggers
   of migration 0005 enabled and disabled, in alternating blocks.
2. Scrape: ``GET /metrics`` (Flask test client, end to end) with 10,000 runs,
   then with ``--runs`` (default 1,000,000), generated as in ``bench.scale``.

    python -m bench.metrics [--smoke] [--runs N]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import sqlalchemy as sa

from bench.harness import report, summary_ms, table
from bench.scale import GENERATE_RUNS, GENERATE_STEPS
from bench.services import scratch

RUN = "INSERT INTO workflow_runs (id, name, status, input) VALUES (:id, 'bench', 'pending', '{}')"
STEPS = """
INSERT INTO workflow_steps (run_id, position, name, status, attempts)
SELECT :id, p, 'step_' || p, 'pending', 0 FROM generate_series(0, 2) AS p
"""
CLAIM = """
UPDATE workflow_steps SET status = 'running', attempts = attempts + 1, started_at = now(),
       lease_owner = 'bench', lease_expires_at = now() + interval '30 seconds'
WHERE run_id = :id AND position = :p AND status = 'pending'
"""
CHECKPOINT = """
UPDATE workflow_steps SET status = 'succeeded', output = '{"ok": true}', finished_at = now(),
       lease_owner = NULL, lease_expires_at = NULL
WHERE run_id = :id AND position = :p AND status = 'running' AND lease_owner = 'bench'
"""
RUN_STATUS = "UPDATE workflow_runs SET status = :to, updated_at = now() WHERE id = :id"
TRIGGERS = ("workflow_runs", "workflow_steps")
# bench.scale's steps, for the runs that have none yet (this bench generates twice)
NEW_STEPS = GENERATE_STEPS.replace(
    "FROM workflow_runs r CROSS JOIN generate_series(0, 2) AS p",
    "FROM workflow_runs r CROSS JOIN generate_series(0, 2) AS p "
    "WHERE NOT EXISTS (SELECT 1 FROM workflow_steps s WHERE s.run_id = r.id)",
)
assert NEW_STEPS != GENERATE_STEPS


def walk(engine: sa.Engine, runs: int, durable: bool = True) -> list[float]:
    """Seconds per committed transition, for ``runs`` runs of 3 steps."""
    import uuid

    times: list[float] = []

    def commit(sql: str, **params: Any) -> None:
        t = time.perf_counter()
        with engine.begin() as c:
            if not durable:  # no WAL flush wait: what is left is the statements' own work
                c.exec_driver_sql("SET LOCAL synchronous_commit = off")
            c.execute(sa.text(sql), params)
        times.append(time.perf_counter() - t)

    for _ in range(runs):
        run_id = uuid.uuid4()
        with engine.begin() as c:
            c.execute(sa.text(RUN), {"id": run_id})
            c.execute(sa.text(STEPS), {"id": run_id})
        commit(RUN_STATUS, id=run_id, to="running")
        for p in range(3):
            commit(CLAIM, id=run_id, p=p)
            commit(CHECKPOINT, id=run_id, p=p)
        commit(RUN_STATUS, id=run_id, to="succeeded")
    return times


def trigger_ms(engine: sa.Engine, samples: int) -> dict[str, Any]:
    """Postgres's own timing of each trigger (EXPLAIN ANALYZE), on a checkpoint and on a
    run finishing; rolled back each time. Immune to commit and scheduling noise."""
    import re
    import uuid

    found: dict[str, list[float]] = {}
    for _ in range(samples):
        run_id = uuid.uuid4()
        with engine.begin() as c:
            c.execute(sa.text(RUN), {"id": run_id})
            c.execute(sa.text(STEPS), {"id": run_id})
            c.execute(sa.text(RUN_STATUS), {"id": run_id, "to": "running"})
            c.execute(sa.text(CLAIM), {"id": run_id, "p": 0})
        with engine.connect() as c:
            for sql, params in (
                (CHECKPOINT, {"id": run_id, "p": 0}),
                (RUN_STATUS, {"id": run_id, "to": "succeeded"}),
            ):
                plan = c.execute(sa.text(f"EXPLAIN (ANALYZE, FORMAT TEXT) {sql}"), params)
                for line in plan.scalars():
                    match = re.search(r"Trigger (\w+): time=([\d.]+)", line)
                    if match:
                        found.setdefault(match.group(1), []).append(float(match.group(2)))
            c.rollback()
    return {name: summary_ms([t / 1000 for t in times]) for name, times in found.items()}


def set_triggers(engine: sa.Engine, enabled: bool) -> None:
    with engine.begin() as c:
        for t in TRIGGERS:
            c.exec_driver_sql(f"ALTER TABLE {t} {'ENABLE' if enabled else 'DISABLE'} TRIGGER USER")


def hot_path(
    engine: sa.Engine, blocks: int, runs_per_block: int, durable: bool
) -> dict[str, Any]:
    samples: dict[bool, list[float]] = {True: [], False: []}
    walk(engine, 5, durable)  # warm up
    for i in range(blocks * 2):
        enabled = i % 2 == 0
        set_triggers(engine, enabled)
        samples[enabled] += walk(engine, runs_per_block, durable)
    set_triggers(engine, True)
    on, off = summary_ms(samples[True]), summary_ms(samples[False])
    return {
        "transitions": len(samples[True]),
        "with_triggers": on,
        "without_triggers": off,
        "extra_ms_p50": round(on["p50_ms"] - off["p50_ms"], 3),
    }


def scrape_times(client: Any, samples: int) -> dict[str, Any]:
    client.get("/metrics")
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        response = client.get("/metrics")
        times.append(time.perf_counter() - t)
        assert response.status_code == 200
    return summary_ms(times)


def generate(engine: sa.Engine, n: int) -> None:
    with engine.begin() as c:
        c.execute(sa.text(GENERATE_RUNS), {"n": n})
        c.execute(sa.text(NEW_STEPS))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE workflow_runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI), not a measurement")
    parser.add_argument("--runs", type=int, default=1_000_000)
    args = parser.parse_args()
    blocks, per_block, small, big, samples = (
        (1, 5, 1_000, 5_000, 5) if args.smoke else (4, 50, 10_000, args.runs, 100)
    )
    with scratch():
        from app import create_app
        from app.engine.db import get_engine
        from app.settings import get_settings

        engine = get_engine(get_settings().database_url)
        hot = hot_path(engine, blocks, per_block, durable=True)
        cpu = hot_path(engine, blocks, per_block, durable=False)
        own = trigger_ms(engine, 20 if args.smoke else 300)
        client = create_app().test_client()
        generate(engine, small)
        at_small = scrape_times(client, samples)
        generate(engine, big - small)
        at_big = scrape_times(client, samples)

    result = {
        "bench": "metrics",
        "smoke": args.smoke,
        "hot_path": hot,
        "hot_path_async_commit": cpu,
        "trigger_time": own,
        "scrape": {f"{small} runs": at_small, f"{big} runs": at_big},
    }
    rows = [
        ["transition, triggers on", *_ms(hot["with_triggers"])],
        ["transition, triggers off", *_ms(hot["without_triggers"])],
        ["same, async commit, on", *_ms(cpu["with_triggers"])],
        ["same, async commit, off", *_ms(cpu["without_triggers"])],
        *([f"trigger {name} (Postgres's timing)", *_ms(t)] for name, t in own.items()),
        [f"scrape, {small:,} runs", *_ms(at_small)],
        [f"scrape, {big:,} runs", *_ms(at_big)],
    ]
    text = table("bench.metrics", ["", "p50 ms", "p99 ms"], rows) + (
        f"\nextra per committed transition (p50): {hot['extra_ms_p50']} ms durable, "
        f"{cpu['extra_ms_p50']} ms with synchronous_commit off\n"
    )
    report(text, result)


def _ms(summary: dict[str, Any]) -> list[str]:
    return [f"{summary['p50_ms']:.3f}", f"{summary['p99_ms']:.3f}"]


if __name__ == "__main__":
    main()
