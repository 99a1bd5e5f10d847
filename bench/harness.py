"""What every benchmark shares: worker subprocesses, percentiles, the report."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.services import ROOT

VENV_BIN = Path(sys.executable).parent
READY_PREFIX = "bench:ready:"


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds on tiny sizes (CI), not a measurement"
    )
    return parser.parse_args()


def wait_until(
    condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.02
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


class Worker:
    """A real ``celery -A workers worker`` in its own process group.

    By default with the flags of the Procfile (prefork, events on; the project's
    settings give prefetch 1, late acks, JSON); ``bench.plain_app`` runs with
    Celery's own defaults instead (``project_flags=False``).
    """

    def __init__(
        self,
        env: dict[str, str],
        *,
        concurrency: int = 2,
        queues: str | None = None,
        loglevel: str = "INFO",
        pool: str = "prefork",
        app: str = "workers",
        project_flags: bool = True,
        events: bool = True,
    ):
        """``queues``: consume only these (e.g. an idle queue, then ``consume_all``).
        ``project_flags=False`` runs ``app`` with Celery's own defaults: no events,
        gossip and mingle on, every queue of the app consumed. ``events=False``: the
        project's worker without ``-E`` (no task events: as with no Flower running)."""
        self.node = f"bench-{uuid.uuid4().hex[:8]}@localhost"
        self.args = [str(VENV_BIN / "celery"), "-A", app, "worker"]
        if project_flags:
            self.args += [*(["-E"] if events else []), *(["--queues", queues] if queues else []),
                          "--without-gossip", "--without-mingle"]
        self.args += [
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--hostname",
            self.node,
            "--loglevel",
            loglevel,
        ]
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.env["PATH"] = f"{VENV_BIN}{os.pathsep}{self.env.get('PATH', '')}"
        fd, name = tempfile.mkstemp(prefix="stepwise-bench-worker-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> Worker:
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it)
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_until(
                lambda: self._ready() or self.proc.poll() is not None,  # type: ignore[union-attr]
                timeout=timeout,
                what="the worker to be ready",
                interval=0.1,
            )
        except TimeoutError:
            self.stop()
            print(f"(worker log kept at {self.log_path})", file=sys.stderr)
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited at start:\n{self.output()[-4000:]}")
        return self

    def _ready(self) -> bool:
        if "ready." in self.output():
            return True
        # below INFO the worker prints no "ready." line; the bench apps' worker_ready
        # hook leaves a key in the broker's database instead (bench.plain_app, bench.workflows)
        import redis

        client = redis.Redis.from_url(self.env["CELERY_BROKER_URL"])
        try:
            return bool(client.exists(f"{READY_PREFIX}{self.node}"))
        finally:
            client.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (a lost machine)."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if exc[0] is None:
            self.log_path.unlink(missing_ok=True)
        else:
            print(f"(worker log kept at {self.log_path})", file=sys.stderr)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
    }


def xact_commits(db_name: str) -> int:
    """Committed transactions in ``db_name`` so far (flushed backends only)."""
    from bench.services import admin_engine

    admin = admin_engine()
    with admin.connect() as c:
        c.exec_driver_sql("SET stats_fetch_consistency = none")
        value = c.execute(
            sa.text("SELECT xact_commit FROM pg_stat_database WHERE datname = :n"), {"n": db_name}
        ).scalar_one()
    admin.dispose()
    return int(value)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(map(str, header))] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        lines.append("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def report(text: str, result: dict[str, Any]) -> None:
    """The table for people, then one JSON line for machines (always last)."""
    print(text)
    print(json.dumps(result, sort_keys=True), flush=True)


def wal_flush_lsn() -> str:
    from bench.services import admin_engine

    admin = admin_engine()
    with admin.connect() as c:
        lsn = str(c.execute(sa.text("SELECT pg_current_wal_flush_lsn()")).scalar_one())
    admin.dispose()
    return lsn


def writing_commits(database_url: str, start_lsn: str) -> int:
    """Committed transactions that wrote to this database since ``start_lsn``.

    Read from the WAL (``pg_walinspect``): the distinct xids of COMMIT records
    whose transaction logged a change to a relation of this database. Read-only
    transactions (a pool's pre-ping ``SELECT 1``) write no WAL and are not counted.
    """
    time.sleep(1.0)  # asynchronous commits reach the flushed WAL within ~3 wal_writer_delay
    end_lsn = wal_flush_lsn()
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as c:
        c.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        dboid = c.execute(
            sa.text("SELECT oid FROM pg_database WHERE datname = current_database()")
        ).scalar_one()
        count = c.execute(
            sa.text(
                """
                WITH recs AS (
                    SELECT xid, resource_manager, record_type, block_ref
                    FROM pg_get_wal_records_info(CAST(:start AS pg_lsn), CAST(:end AS pg_lsn)))
                SELECT count(DISTINCT CAST(CAST(xid AS text) AS bigint)) FROM recs
                WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%'
                  AND xid IN (SELECT xid FROM recs WHERE block_ref LIKE :pattern)
                """
            ),
            {"start": start_lsn, "end": end_lsn, "pattern": f"%/{dboid}/%"},
        ).scalar_one()
    engine.dispose()
    return int(count)


def consume_all(app: Any, node: str) -> None:
    """Tell an idle worker to consume every queue it would by default (each step's)."""
    for queue in app.conf.task_queues or []:
        app.control.add_consumer(queue.name, destination=[node], reply=True, timeout=10)
