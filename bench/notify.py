"""What the run-notification trigger (migration 0007) costs a commit.

Many small transactions — one ``UPDATE workflow_runs SET updated_at = now()``
each, durably committed, the shape of a step checkpoint's run update — timed
per commit in three set-ups, interleaved over several rounds so that the
machine's background load falls on all of them alike:

* ``no trigger``: the 0007 triggers disabled (what round 1 paid);
* ``trigger``: the trigger sends ``pg_notify``, nobody listens;
* ``trigger + listener``: the same with one ``Listener`` draining the channel
  (as each web process holds one);
* ``status only + listener``: ``stepwise.notify = 'status'``, so these
  updates (``updated_at`` only, like most checkpoints) send nothing.

With 1 client and with 4 concurrent clients: ``NOTIFY`` serialises committing
transactions on one lock, so concurrency is where a cost would show.

    python -m bench.notify            # the measurement in docs/performance.md
    python -m bench.notify --smoke    # a few seconds, not a measurement
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from typing import Any

import psycopg2
import sqlalchemy as sa

from bench.harness import parse_args, percentile, report, table
from bench.services import scratch

MODES = ("no trigger", "trigger", "trigger + listener", "status only + listener")


def seed(engine: sa.Engine, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    with engine.begin() as c:
        c.execute(sa.text("SET LOCAL stepwise.notify = 'off'"))
        c.execute(
            sa.text(
                "INSERT INTO workflow_runs (id, name, status, input, created_at, updated_at) "
                "VALUES (:id, 'bench', 'running', '{}', now(), now())"
            ),
            [{"id": i} for i in ids],
        )
    return ids


def set_trigger(engine: sa.Engine, enabled: bool) -> None:
    verb = "ENABLE" if enabled else "DISABLE"
    with engine.begin() as c:
        c.execute(sa.text(f"ALTER TABLE workflow_runs {verb} TRIGGER USER"))


def client(dsn: str, mode: str, ids: list[uuid.UUID], commits: int, out: list[float]) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True  # every statement its own durably committed transaction
    cur = conn.cursor()
    if mode.startswith("status only"):
        cur.execute("SET stepwise.notify = 'status'")
    for k in range(commits):
        t0 = time.perf_counter()
        cur.execute(
            "UPDATE workflow_runs SET updated_at = now() WHERE id = %s", (str(ids[k % len(ids)]),)
        )
        out.append(time.perf_counter() - t0)
    conn.close()


def measure(
    dsn: str, mode: str, ids: list[uuid.UUID], clients: int, commits: int
) -> dict[str, float]:
    samples: list[list[float]] = [[] for _ in range(clients)]
    share = len(ids) // clients
    threads = [
        threading.Thread(
            target=client,
            args=(dsn, mode, ids[i * share : (i + 1) * share], commits, samples[i]),
        )
        for i in range(clients)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = [s * 1000 for sample in samples for s in sample]
    return {
        "p50_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 99),
        "commits_per_s": len(ms) / wall,
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rounds, commits = (1, 100) if args.smoke else (3, 1000)
    with scratch() as s:
        from app.engine.db import get_engine
        from app.engine.notify import Listener

        engine = get_engine(s.database_url)
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        ids = seed(engine, 400)
        listener = Listener(engine)
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        for _ in range(rounds):
            for clients in (1, 4):
                for mode in MODES:
                    set_trigger(engine, mode != "no trigger")
                    sub = listener.subscribe(None) if mode.endswith("listener") else None
                    if sub is not None:
                        listener.connected.wait(10)
                    results.setdefault((mode, clients), []).append(
                        measure(dsn, mode, ids, clients, commits)
                    )
                    if sub is not None:
                        sub.close()
        listener.close()

    rows: list[list[Any]] = []
    result: dict[str, Any] = {
        "bench": "notify",
        "smoke": args.smoke,
        "rounds": rounds,
        "commits_per_client": commits,
    }
    for (mode, clients), runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        rows.append([mode, clients, med["p50_ms"], med["p99_ms"], med["commits_per_s"]])
        result[f"{mode.replace(' + ', '_and_').replace(' ', '_')}_{clients}"] = med
    text = table(
        f"run-notification trigger, one-row UPDATE per commit "
        f"(median of {rounds} interleaved rounds, {commits} commits per client each)",
        ["set-up", "clients", "p50 ms", "p99 ms", "commits/s"],
        rows,
    )
    report(text, result)


if __name__ == "__main__":
    main()
