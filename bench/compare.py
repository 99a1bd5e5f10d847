"""Stepwise, DBOS 3.4 and two plain Celery chains, side by side in one run (issue 15).

The workload is the same for all: a workflow of 3 (or 1) no-op steps.

- **throughput**: 1,000 3-step workflows started at once from one client while
  the workers consume; the clock runs from the first start to the last
  completion. Rounds alternate between the systems (``--rounds``).
- **CPU per workflow** over each throughput batch, by component, from /proc
  (``bench.cpu``): the client, the worker processes, the Postgres backends of
  the system's own database, the Redis server (shared with the machine: an
  upper bound), and the whole machine for how noisy it was.
- **latency**: sequential runs, 1-step and 3-step, interleaved in blocks across
  the systems so that load from elsewhere hits all alike; p50/p95, and the
  marginal cost of a step = (p50 of 3 steps - p50 of 1 step) / 2. The start
  call's own time is kept too (``start`` ms per run, one client).
- **commits and statements**, Stepwise and DBOS, over sequential runs:
  ``xact_commit`` deltas, writing commits counted in the WAL, and statements
  counted on the client side (pg_stat_statements is not loaded on this server).

Every system gets its own database / Redis database number; Stepwise runs
through ``manager.start`` with the Procfile's pool (prefork, two processes per core)
and log level warning.

    python -m bench.compare [--smoke] [--systems a,b] [--pool prefork|threads] [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
import sqlalchemy as sa

from bench import cpu, dbos_venv
from bench.compare_report import build_result, render
from bench.harness import Worker, report, wal_flush_lsn, writing_commits, xact_commits
from bench.latency import settled_commits
from bench.services import REDIS_BASE, _database_url, admin_engine, claim_redis_db, scratch
from bench.systems import ChainSystem, DbosSystem, Latencies, chain_starter, stepwise_starter

SYSTEMS = ("celery defaults", "celery project", "dbos", "stepwise")
STEPWISE_WORKFLOWS = {1: "bench_noop1", 3: "bench_noop"}


@dataclass(frozen=True)
class Sizes:
    workflows: int
    rounds: int
    latency_runs: int
    block: int
    count_runs: int
    warmup: int


FULL = Sizes(workflows=1000, rounds=2, latency_runs=200, block=20, count_runs=30, warmup=50)
SMOKE = Sizes(workflows=20, rounds=1, latency_runs=4, block=2, count_runs=2, warmup=4)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI), not a measurement")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    parser.add_argument("--pool", default="prefork", help="pool of the project's worker")
    parser.add_argument("--concurrency", type=int, default=2 * len(os.sched_getaffinity(0)),
                        help="processes of the project's worker (default: the Procfile's, 2 per core)")
    parser.add_argument("--events", choices=("on", "off"), default="on",
                        help="the project's worker with -E (as the Procfile) or without")
    parser.add_argument("--rounds", type=int, default=None, help="throughput rounds")
    parser.add_argument("--workflows", type=int, default=None, help="workflows per throughput batch")
    args = parser.parse_args()
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {list(SYSTEMS)}")
    return args


def main() -> None:
    # a SIGTERM (timeout, Ctrl-C from a runner) unwinds like an error: workers stopped,
    # scratch databases dropped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse()
    sizes = SMOKE if args.smoke else FULL
    if args.rounds or args.workflows:
        sizes = Sizes(**{**sizes.__dict__, "rounds": args.rounds or sizes.rounds,
                         "workflows": args.workflows or sizes.workflows})
    skipped: dict[str, str] = {}
    dbos_python = None
    if "dbos" in args.systems:
        try:
            dbos_python = dbos_venv.ensure(timeout=120 if args.smoke else 900)
        except RuntimeError as exc:
            skipped["dbos"] = f"DBOS venv not available: {exc}"
    defaults_db = claim_redis_db()
    defaults_url = f"{REDIS_BASE}/{defaults_db}"
    os.environ["BENCH_DEFAULTS_BROKER_URL"] = defaults_url
    try:
        measured = run(args, sizes, dbos_python, defaults_url)
    finally:
        client = redis.Redis.from_url(defaults_url)
        client.flushdb()
        client.close()
    result = build_result(measured, sizes.__dict__, args.smoke, skipped, args.pool, args.concurrency,
                          args.events == "on")
    report(render(result), result)


def run(args: argparse.Namespace, sizes: Sizes, dbos_python: Any, defaults_url: str) -> dict[str, Any]:
    wanted = [s for s in args.systems if s != "dbos" or dbos_python is not None]
    with scratch(LOG_LEVEL="warning") as s, contextlib.ExitStack() as stack:
        admin = admin_engine()
        stack.callback(admin.dispose)
        systems: dict[str, Any] = {}
        project_worker = None
        if {"celery project", "stepwise"} & set(wanted):
            project_worker = stack.enter_context(
                Worker(s.env, concurrency=args.concurrency, loglevel="WARNING", pool=args.pool,
                       events=args.events == "on")
            )
        if "celery defaults" in wanted:
            from bench import plain_app

            env = {**s.env, "CELERY_BROKER_URL": defaults_url, "BENCH_DEFAULTS_BROKER_URL": defaults_url}
            worker = stack.enter_context(
                Worker(env, concurrency=2, loglevel="WARNING", app="bench.plain_app", project_flags=False)
            )
            systems["celery defaults"] = ChainSystem(
                "celery defaults",
                chain_starter(plain_app.app, plain_app.CHAINS),
                redis.Redis.from_url(defaults_url),
                plain_app.DONE_KEY,
                worker,
            )
        project_done = redis.Redis.from_url(s.redis_url)
        manager = None
        if project_worker is not None:
            from app.runtime import get_manager
            from bench.workflows import DONE_KEY, PLAIN_SOLO, PLAIN_TASKS
            from workers.celery_app import app

            manager = get_manager()
            backends = cpu.postgres_backends(admin, s.db_name)
            if "celery project" in wanted:
                systems["celery project"] = ChainSystem(
                    "celery project",
                    chain_starter(app, {1: PLAIN_SOLO, 3: PLAIN_TASKS}),
                    project_done, DONE_KEY, project_worker,
                )
            if "stepwise" in wanted:
                systems["stepwise"] = ChainSystem(
                    "stepwise", stepwise_starter(manager, STEPWISE_WORKFLOWS),
                    project_done, DONE_KEY, project_worker, postgres=backends,
                )
        dbos_db = None
        if "dbos" in wanted:
            dbos_db = stack.enter_context(_database(admin, "stepwise_bench_dbos_"))
            dbos = DbosSystem(dbos_python, _database_url(dbos_db),
                              cpu.postgres_backends(admin, dbos_db))
            stack.callback(dbos.close)
            systems["dbos"] = dbos
        ordered = {name: systems[name] for name in SYSTEMS if name in systems}

        phase("warm-up")
        for system in ordered.values():  # warm processes, pools and caches
            system.throughput(sizes.warmup, 3)
            system.latency(2, 1)
            system.latency(2, 3)
        throughput: dict[str, list[Any]] = {name: [] for name in ordered}
        for _ in range(sizes.rounds):
            for name, system in ordered.items():
                phase(f"throughput: {name}")
                throughput[name].append(system.throughput(sizes.workflows, 3))
        phase("latency")
        latency = {name: {1: Latencies(), 3: Latencies()} for name in ordered}
        for _ in range(max(1, sizes.latency_runs // sizes.block)):
            for name, system in ordered.items():
                for steps in (1, 3):
                    got = system.latency(sizes.block, steps)
                    latency[name][steps].total_s.extend(got.total_s)
                    latency[name][steps].start_s.extend(got.start_s)

        counts: dict[str, Any] = {}
        if "stepwise" in ordered:
            assert project_worker is not None and manager is not None
            phase("counting statements: stepwise")
            project_worker.stop()
            counts["stepwise"] = count_stepwise(s, args, sizes.count_runs, manager, project_done)
        if "dbos" in ordered:
            phase("counting statements: dbos")
            counts["dbos"] = count_dbos(ordered["dbos"], dbos_db, sizes.count_runs)
    return {"throughput": throughput, "latency": latency, "counts": counts}


@contextlib.contextmanager
def _database(admin: sa.Engine, prefix: str) -> Iterator[str]:
    name = f"{prefix}{secrets.token_hex(4)}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def count_stepwise(s: Any, args: argparse.Namespace, runs: int, manager: Any,
                   done: redis.Redis) -> dict[str, Any]:
    """Statements and commits of Stepwise runs, in a worker that counts its statements."""
    from bench.workflows import DONE_KEY, SQL_KEY, _sql_counter

    _sql_counter.install()
    env = {**s.env, "STEPWISE_BENCH_COUNT_SQL": "1"}
    counted: dict[str, Any] = {}
    with Worker(env, concurrency=args.concurrency, loglevel="WARNING", pool=args.pool,
                events=args.events == "on") as worker:
        phase("  counting worker ready")
        system = ChainSystem("stepwise", stepwise_starter(manager, STEPWISE_WORKFLOWS), done,
                             DONE_KEY, worker)
        system.latency(2, 3)  # the new worker's connections
        for steps in (1, 3):
            done.delete(SQL_KEY)
            phase(f"  {steps}-step runs: waiting for the commit counters to settle")
            before = settled_commits(s.db_name)
            lsn = wal_flush_lsn()
            client_before = _sql_counter.statements
            system.latency(runs, steps)
            client = _sql_counter.statements - client_before
            worker_statements = int(done.get(SQL_KEY) or 0)
            transactions = settled_commits(s.db_name) - before
            phase("  reading the WAL")
            counted[steps] = {
                "runs": runs,
                "statements_client": client / runs,
                "statements_worker": worker_statements / runs,
                "statements": (client + worker_statements) / runs,
                "xact_commit": transactions / runs,
                "writing_commits": writing_commits(s.database_url, lsn) / runs,
            }
    return counted


def count_dbos(dbos: DbosSystem, db_name: str | None, runs: int) -> dict[str, Any]:
    """DBOS's statements and commits; its background threads poll (and commit) all the
    time, so their rate, measured idle just before, is taken off ``xact_commit``."""
    assert db_name is not None
    url = _database_url(db_name)
    counted: dict[str, Any] = {}
    for steps in (1, 3):
        idle_from, idle_t0 = xact_commits(db_name), time.monotonic()
        time.sleep(3)
        before, t0 = xact_commits(db_name), time.monotonic()
        idle_rate = (before - idle_from) / (t0 - idle_t0)
        lsn = wal_flush_lsn()
        statements = dbos.ask(cmd="count", runs=runs, steps=steps)["statements"]
        time.sleep(1.5)  # backends flush their counters at most once a second
        transactions = xact_commits(db_name) - before - idle_rate * (time.monotonic() - t0)
        counted[steps] = {
            "runs": runs,
            "statements": statements / runs,
            "xact_commit": transactions / runs,
            "writing_commits": writing_commits(url, lsn) / runs,
        }
    return counted


def phase(name: str) -> None:
    """Progress on stderr, so a slow phase on a busy machine shows where it is."""
    print(f"[compare {time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
