"""Workers die; Postgres remembers. Each test kills real processes and counts effects."""

from __future__ import annotations

import os
import signal
import uuid

import pytest
import redis as redis_lib
import sqlalchemy as sa

from tests.e2e.conftest import gate_id
from tests.reliability.conftest import (
    accepted_sendgrid_per_key,
    stripe_per_key,
    tally,
    webhook_per_run,
)
from tests.support.environment import REDIS_URL
from tests.support.polling import wait_for
from tests.support.processes import VENV_BIN, Process, Worker
from tests.support.redis_lock import LOCK_KEY
from tests.support.workflows import executions, store

pytestmark = pytest.mark.slow


def beat(tmp_path) -> Process:
    return Process(
        [str(VENV_BIN / "celery"), "-A", "workers", "beat", "--loglevel", "INFO",
         "-s", str(tmp_path / "beat-schedule")],
        name="beat",
    ).start()


def test_sigkill_the_whole_worker_with_200_runs_in_flight(manager, engine, tmp_path,
                                                          sendgrid, stripe_api, webhook,
                                                          provider_env):
    """Scenario 1: 20 runs mid-call to SendGrid, 180 queued behind them; SIGKILL
    the worker's process group; restart. Every run succeeds, each DB effect
    exists once, each provider accepted each idempotency key once."""
    emails = {}
    runs = []
    sendgrid.holding.set()
    first = Worker(concurrency=20, env=provider_env).start()
    try:
        for i in range(200):
            email = f"crash-{i}-{uuid.uuid4().hex[:6]}@example.com"
            rid = manager.start("signup", {"email": email, "name": f"Crash {i}", "plan": "pro"}).run["id"]
            emails[rid] = email
            runs.append(rid)
        wait_for(lambda: len(sendgrid.held) >= 20, timeout=90, what="20 runs held mid-send")
        first.kill()
    finally:
        first.stop()
    sendgrid.holding.clear()
    sendgrid.release.set()  # held calls now fail with 503: never accepted
    mid = tally(manager, runs)
    assert mid["succeeded"] == 0 and sum(mid.values()) == 200

    second = Worker(concurrency=4, env=provider_env).start()
    sweeper = beat(tmp_path)
    try:
        wait_for(lambda: tally(manager, runs) == {"succeeded": 200}, timeout=240, interval=1,
                 what="all 200 runs to succeed")
    finally:
        sweeper.stop()
        second.stop()

    with engine.connect() as c:
        users = dict(c.execute(
            sa.text("SELECT email, count(*) FROM users WHERE email = ANY(:e) GROUP BY email"),
            {"e": list(emails.values())},
        ).all())
        deliveries = c.execute(
            sa.text("SELECT count(*) FROM deliveries WHERE run_id::text = ANY(:ids)"),
            {"ids": [str(r) for r in runs]},
        ).scalar()
    assert len(users) == 200 and set(users.values()) == {1}
    assert deliveries == 400  # one email and one chat post per run
    assert set(stripe_per_key(stripe_api, runs).values()) == {1}
    assert len(stripe_per_key(stripe_api, runs)) == 200
    accepted = accepted_sendgrid_per_key(sendgrid, runs)
    assert len(accepted) == 200 and set(accepted.values()) == {1}
    assert set(webhook_per_run(webhook, runs, emails).values()) == {1}
    interrupted = [r for r in runs if manager.get(r)["steps"][2]["attempts"] > 1]
    assert len(interrupted) >= 20
    for rid in runs:
        steps = manager.get(rid)["steps"]
        assert [s["attempts"] for s in steps[:2]] == [1, 1]  # done before the crash: not re-run


def test_sigkill_mid_step_then_restart_every_run_succeeds_exactly_once(manager, engine, tmp_path):
    gate = gate_id()
    first = Worker(concurrency=20).start()
    runs = [manager.start("gated", {"gate": gate}).run["id"] for _ in range(20)]
    try:
        wait_for(lambda: store().scard(f"arrived:{gate}") == 20, timeout=60,
                 what="20 runs blocked mid-step")
        first.kill()  # SIGKILL the whole process group: parent and every pool child
    finally:
        first.stop()
    assert {manager.get(r)["steps"][1]["status"] for r in runs} == {"running"}

    store().set(f"gate:{gate}", 1)
    second = Worker(concurrency=4).start()
    sweeper = beat(tmp_path)  # the real periodic recovery sweep
    try:
        wait_for(lambda: tally(manager, runs) == {"succeeded": 20}, timeout=90,
                 interval=0.5, what="all 20 runs to succeed")
    finally:
        sweeper.stop()
        second.stop()

    with engine.connect() as c:
        per_email = c.execute(
            sa.text("SELECT email, count(*) FROM users WHERE name = 'gated' "
                    "AND run_id::text = ANY(:ids) GROUP BY email"),
            {"ids": [str(r) for r in runs]},
        ).all()
    assert len(per_email) == 20 and all(n == 1 for _, n in per_email)
    for rid in runs:
        run = manager.get(rid)
        assert executions(rid, "first") == 1  # succeeded before the crash: never again
        assert executions(rid, "last") == 1
        assert executions(rid, "blocked") == 2  # interrupted once, then completed
        assert run["steps"][1]["attempts"] == 2
        assert run["recovery_count"] == 1


@pytest.mark.redis_broker
def test_queued_runs_survive_a_broker_flush(manager):
    """Redis loses every queued message (a restart with no persistence)."""
    emails = [f"lost-{uuid.uuid4().hex[:6]}@example.com" for _ in range(5)]
    runs = [manager.start("signup", {"email": e, "name": "Lost", "plan": "free"}).run["id"]
            for e in emails]
    broker = redis_lib.Redis.from_url(REDIS_URL)
    def queued() -> int:  # every step has its own queue
        return sum(broker.llen(q) for q in broker.scan_iter(match="stepwise.*", _type="list"))

    assert queued() >= 5
    lock = broker.get(LOCK_KEY)
    broker.flushdb()
    broker.set(LOCK_KEY, lock)
    assert queued() == 0

    worker = Worker(concurrency=2).start()
    try:
        resent: set = set()

        def all_resent() -> bool:  # each run once its message is older than the grace
            resent.update(manager.recover().resent)
            return set(runs) <= resent

        wait_for(all_resent, timeout=30, interval=0.2, what="the sweep to find every stranded run")
        wait_for(lambda: tally(manager, runs) == {"succeeded": 5}, timeout=60,
                 what="all runs to succeed")
    finally:
        worker.stop()
    for rid in runs:
        assert [s["attempts"] for s in manager.get(rid)["steps"]] == [1, 1, 1, 1, 1]


def test_a_poison_step_is_dead_lettered_while_other_runs_finish(manager):
    worker = Worker(concurrency=2).start()
    try:
        poison = manager.start("poison", {}).run["id"]
        healthy = [manager.start("flaky", {}).run["id"] for _ in range(100)]

        def settled() -> bool:
            manager.recover()
            return manager.get(poison)["status"] == "failed"

        wait_for(settled, timeout=120, interval=0.5, what="the poison run to be dead-lettered")
        wait_for(lambda: tally(manager, healthy) == {"succeeded": 100}, timeout=120,
                 what="healthy runs to succeed")
    finally:
        worker.stop()
    run = manager.get(poison)
    assert run["error"]["type"] == "RecoveryLimitExceeded"
    assert run["error"]["step"] == "crash"
    assert "recovery limit of 2" in run["error"]["message"]
    assert run["steps"][0]["status"] == "failed"
    # one first attempt plus one per recovery allowed by the limit; then it stops
    assert executions(poison, "crash") == 3


def test_sigkill_of_one_pool_child_redelivers_its_step(manager):
    gate = gate_id()
    worker = Worker(concurrency=2).start()
    try:
        run_id = manager.start("gated", {"gate": gate}).run["id"]
        wait_for(lambda: store().sismember(f"arrived:{gate}", str(run_id)), what="step to block")
        pid = int(store().hget("pids", str(run_id)))
        assert pid in worker.child_pids()
        os.kill(pid, signal.SIGKILL)
        store().set(f"gate:{gate}", 1)

        # no sweep here: the redelivered message takes over the dead child's lease
        wait_for(lambda: manager.get(run_id)["status"] == "succeeded", timeout=30,
                 what="the run to succeed after the child died")
    finally:
        worker.stop()
    assert executions(run_id, "blocked") == 2
    assert executions(run_id, "first") == 1 and executions(run_id, "last") == 1

