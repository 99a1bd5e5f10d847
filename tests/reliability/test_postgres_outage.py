"""Scenario 6: Postgres refuses connections for 5 s while runs are in flight.

Only the test session's own database is touched: ``ALLOW_CONNECTIONS false``
on it, then every backend connected to it is terminated (the worker's, the web
process's, ours). During the outage ``/readyz`` and the API answer 503 in the
error shape; afterwards every run succeeds and no step's body ran more often
than its recorded attempts — steps whose work was done ride out the outage.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import sqlalchemy as sa

from tests.api.servers import gunicorn
from tests.e2e.conftest import gate_id
from tests.reliability.conftest import tally
from tests.support import environment
from tests.support.polling import wait_for
from tests.support.processes import VENV_BIN, Process, Worker
from tests.support.workflows import executions, store

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 5.0
REQUEST_TIMEOUT = 10.0
GATED = 4  # blocked inside a transactional step when the database goes
HELD = 4  # blocked in a plain step; their work finishes while the database is away
FLAKY = 12
SIGNUPS = 8
FAILS = 3  # flaky's policy allows 4 attempts
# long enough that a step blocked on its gate outlives the outage
ENV = {"WORKFLOW_STEP_TIMEOUT": "20"}


@contextmanager
def database_refusing_connections() -> Iterator[None]:
    """The session's database refuses new connections and loses its current ones."""
    admin = sa.create_engine(environment.ADMIN_URL, isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)
    name = environment.DB_NAME
    assert name.startswith("stepwise_test_")  # never another database on this machine
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            terminated = c.execute(
                sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"),
                {"name": name},
            ).scalar()
        assert terminated, "the worker and the web process had connections to cut"
        yield
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def start(base: str, workflow: str, data: dict[str, object]) -> str:
    response = httpx.post(f"{base}/api/v1/workflows/{workflow}", json={"input": data},
                          timeout=REQUEST_TIMEOUT)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def assert_unavailable(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code


def test_postgres_refusing_connections_for_5s_gives_503s_then_every_run_completes_once(
    manager, engine, tmp_path
):
    gate = gate_id()
    worker = Worker(concurrency=GATED + HELD + 2, env=ENV).start()
    sweeper = Process(
        [str(VENV_BIN / "celery"), "-A", "workers", "beat", "--loglevel", "INFO",
         "-s", str(tmp_path / "beat-schedule")],
        env=ENV, name="beat",
    ).start()
    statuses: Counter[str] = Counter()
    print(f"\nlogs: worker {worker.log_path}, beat {sweeper.log_path}")
    slowest = 0.0
    try:
        with gunicorn(ENV) as base:
            # started through the web process: its settings (the step time limits
            # Celery stamps on a first step's message) are the worker's
            gated = [start(base, "gated", {"gate": gate}) for _ in range(GATED)]
            held = [start(base, "held", {"gate": gate}) for _ in range(HELD)]
            wait_for(lambda: store().scard(f"arrived:{gate}") == GATED + HELD, timeout=30,
                     what="the gated and held runs to block mid-step")
            known = gated[0]
            emails = {}
            for i in range(SIGNUPS):
                email = f"pg-out-{i}-{uuid.uuid4().hex[:6]}@example.com"
                emails[start(base, "signup", {"email": email, "name": "Outage", "plan": "free"})] = email
            # three planned failures: each run spends > 2 s in retry delays, so the
            # cut below finds them mid-way
            flaky = [start(base, "flaky", {"fail_times": FAILS}) for _ in range(FLAKY)]
            started = gated + held + flaky + list(emails)
            quick = flaky + list(emails)
            moving_at_cut = len(quick) - tally(manager, quick)["succeeded"]

            with database_refusing_connections():
                down_since = time.monotonic()
                while time.monotonic() - down_since < OUTAGE_SECONDS:
                    if time.monotonic() - down_since > 1:
                        store().set(f"gate:{gate}", 1)  # blocked steps finish into the outage
                    began = time.monotonic()
                    ready = httpx.get(f"{base}/readyz", timeout=REQUEST_TIMEOUT)
                    assert_unavailable(ready, "not_ready")
                    assert ready.json()["error"]["details"]["database"].startswith("down")
                    assert "database" in ready.json()["error"]["message"]
                    one = httpx.get(f"{base}/api/v1/workflows/{known}", timeout=REQUEST_TIMEOUT)
                    assert_unavailable(one, "database_unavailable")
                    new = httpx.post(
                        f"{base}/api/v1/workflows/signup", timeout=REQUEST_TIMEOUT,
                        json={"input": {"email": f"never-{uuid.uuid4().hex[:6]}@example.com",
                                        "name": "Never", "plan": "free"}},
                    )
                    assert_unavailable(new, "database_unavailable")
                    slowest = max(slowest, time.monotonic() - began)
                    statuses.update(str(r.status_code) for r in (ready, one, new))
            in_flight = len(started) - tally(manager, started)["succeeded"]

            wait_for(lambda: tally(manager, started) == {"succeeded": len(started)},
                     timeout=60, interval=0.5, what="every run to succeed after the outage")
            assert httpx.get(f"{base}/readyz", timeout=REQUEST_TIMEOUT).status_code == 200
            assert worker.alive and sweeper.alive
    finally:
        sweeper.stop()
        worker.stop()

    final = tally(manager, started)
    figures = {
        "started": len(started),
        "unfinished_quick_runs_at_cut": moving_at_cut,
        "unfinished_at_end_of_outage": in_flight,
        "succeeded": final["succeeded"],
        "failed": final["failed"],
        "lost": len(started) - final["succeeded"] - final["failed"],
        "outage_responses": dict(statuses),
        "slowest_outage_round_s": round(slowest, 2),
    }
    print(f"\npostgres outage figures: {figures}")
    assert figures["failed"] == 0 and figures["lost"] == 0
    assert moving_at_cut > 0  # the outage really caught runs mid-way
    assert set(statuses) == {"503"}

    # no doubled step: every body execution is an attempt the run records, and a
    # step whose work was done before the outage was never run again
    doubled = []
    for rid in gated + held + flaky:
        run = manager.get(rid)
        for step in run["steps"]:
            if executions(rid, step["name"]) != step["attempts"]:
                doubled.append((rid, step["name"], executions(rid, step["name"]), step["attempts"]))
    assert doubled == []
    for rid in flaky:
        assert [executions(rid, s) for s in ("prepare", "call_api", "finish")] == [1, FAILS + 1, 1]
    for rid in held:  # finished during the outage: recorded once it was over, not re-run
        assert [executions(rid, s) for s in ("wait", "after")] == [1, 1]
    for rid in gated:  # their transaction was cut: re-run once, the insert kept once
        assert [executions(rid, s) for s in ("first", "blocked", "last")] == [1, 2, 1]
        assert manager.get(rid)["steps"][1]["attempts"] == 2
    with engine.connect() as c:
        users = dict(c.execute(
            sa.text("SELECT run_id, count(*) FROM users WHERE run_id::text = ANY(:ids) "
                    "GROUP BY run_id"),
            {"ids": [str(r) for r in gated + list(emails)]},
        ).all())
        deliveries = Counter(str(rid) for (rid,) in c.execute(
            sa.text("SELECT run_id FROM deliveries WHERE run_id::text = ANY(:ids)"),
            {"ids": [str(r) for r in emails]},
        ).all())
    assert len(users) == GATED + SIGNUPS and set(users.values()) == {1}
    assert len(deliveries) == SIGNUPS and set(deliveries.values()) == {2}
