"""What runs once, what may run twice, and what is never published: counted."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
import redis as redis_lib
import sqlalchemy as sa

from app.engine.models import runs
from tests.e2e.conftest import gate_id, wait_status
from tests.support.environment import REDIS_URL, TEST_ENV
from tests.support.polling import wait_for
from tests.support.processes import ROOT, Worker
from tests.support.workflows import executions, store

pytestmark = pytest.mark.slow


@pytest.fixture
def single_worker():
    """A worker for one test only: scenario 8 needs the broker to itself."""
    w = Worker(concurrency=2).start()
    yield w
    w.stop()


def test_crash_after_the_side_effect_before_the_checkpoint(manager, single_worker, stripe_api):
    """Scenario 7: the step re-runs with the same key; the provider sees the key at
    most twice and answers the same customer; one completion is recorded."""
    run_id = manager.start(
        "ledger", {"provider_url": stripe_api.url, "crash_after_effect": True}
    ).run["id"]
    run = wait_status(manager, run_id, "succeeded", "failed", timeout=60)
    assert run["status"] == "succeeded", run["error"]
    key = f"{run_id}:charge_card"
    seen = [s for s in stripe_api.requests() if s.headers.get("idempotency-key") == key]
    assert len(seen) == 2  # once before the crash, once on the re-run: the documented window
    customers = {s.form()["email"] for s in seen}
    assert customers == {f"{run_id}@ledger.test"}
    charge = run["steps"][0]
    assert charge["attempts"] == 2 and charge["status"] == "succeeded"
    assert run["steps"][1]["output"] == {"booked": charge["output"]["customer"]}
    assert executions(run_id, "charge_card") == 2
    assert executions(run_id, "book") == 1  # one completion: the next step ran once


def test_the_same_message_to_two_workers_at_once_runs_the_body_once(manager):
    """Scenario 8: two worker nodes each receive a copy of a step's message —
    while the body runs, and at the very same moment before either claimed."""
    from app.engine.manager import WorkflowManager
    from workers import app

    env = {"WORKFLOW_STEP_TIMEOUT": "60"}  # no gate wait turns into a timeout retry
    a = Worker(concurrency=2, env=env).start()
    b = Worker(concurrency=2, env=env, queues="duplicates").start()  # only sees copies
    try:
        # a copy arrives at the other node while the first delivery is inside the body
        held = []
        for _ in range(3):
            gate = gate_id()
            run_id = manager.start("gated", {"gate": gate}).run["id"]
            wait_for(lambda r=run_id, g=gate: store().sismember(f"arrived:{g}", str(r)),
                     what="the step to block")
            task_id = _blocked_task_id(run_id, a)
            app.send_task("gated.blocked", args=(str(run_id),), task_id=task_id,
                          queue="duplicates")
            wait_for(lambda t=task_id: f"gated.blocked[{t}] received" in b.output(),
                     what="the copy to reach the second worker")
            wait_for(lambda r=run_id: str(r) in b.output() and "step not claimed" in b.output(),
                     what="the second worker to refuse it")
            store().set(f"gate:{gate}", 1)
            held.append(run_id)
        # two copies published at once, one to each node, before anyone claimed
        silent = WorkflowManager(manager.engine, manager.registry, dispatch=None)
        raced = [silent.start("flaky", {}).run["id"] for _ in range(10)]
        for run_id in raced:
            app.send_task("flaky.prepare", args=(str(run_id),), queue="celery")
            app.send_task("flaky.prepare", args=(str(run_id),), queue="duplicates")
        for run_id in held + raced:
            assert wait_status(manager, run_id, "succeeded", "failed")["status"] == "succeeded"
    finally:
        a.stop()
        b.stop()
    for run_id in held:
        assert executions(run_id, "blocked") == 1
        assert manager.get(run_id)["steps"][1]["attempts"] == 1
    for run_id in raced:
        assert [executions(run_id, s) for s in ("prepare", "call_api", "finish")] == [1, 1, 1]
        assert [s["attempts"] for s in manager.get(run_id)["steps"]] == [1, 1, 1]


def _blocked_task_id(run_id, worker) -> str:
    import json

    def find():
        for line in worker.output().splitlines():
            if line.startswith("{") and str(run_id) in line and '"step": "blocked"' in line:
                return json.loads(line).get("task_id")
        return None

    return wait_for(find, what="the step's task id")


def test_a_start_that_rolls_back_publishes_nothing(manager, engine):
    """Scenario 9a: enqueue after commit — no commit, no message."""
    uses_redis = TEST_ENV["CELERY_BROKER_URL"] == REDIS_URL
    broker = redis_lib.Redis.from_url(REDIS_URL) if uses_redis else None
    before = broker.llen("celery") if broker else None

    class Abort(Exception):
        pass

    with pytest.raises(Abort), engine.begin() as conn:
        started = manager.start("flaky", {}, conn=conn)
        run_id = started.run["id"]
        raise Abort
    with engine.connect() as c:
        found = c.execute(sa.select(sa.func.count()).select_from(runs).where(runs.c.id == run_id))
        assert found.scalar() == 0
    if broker is not None:
        assert broker.llen("celery") == before
    assert run_id not in manager.recover().resent


def test_a_process_killed_between_commit_and_publish_is_recovered(manager, single_worker):
    """Scenario 9b: the run is committed, the process dies before sending; the
    sweep sends it and it runs once."""
    script = textwrap.dedent(
        """
        import os, signal
        from app.runtime import build_manager
        from app.settings import get_settings

        def die_before_publish(run_id, workflow, position):
            print(run_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        build_manager(get_settings(), dispatch=die_before_publish).start("flaky", {})
        """
    )
    import os

    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **TEST_ENV},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == -9
    run_id = proc.stdout.strip()
    assert manager.get(run_id)["status"] == "pending"

    def recovered() -> bool:
        manager.recover()
        return manager.get(run_id)["status"] == "succeeded"

    wait_for(recovered, timeout=30, interval=0.5, what="the sweep to send the orphaned run")
    assert [executions(run_id, s) for s in ("prepare", "call_api", "finish")] == [1, 1, 1]


def test_twenty_concurrent_starts_with_one_key_make_one_run(manager, engine):
    """Scenario 11 at the engine: the unique constraint, not a read-then-write, decides."""
    import uuid

    key = uuid.uuid4().hex
    barrier = threading.Barrier(20)
    results = []

    def go() -> None:
        barrier.wait()
        results.append(manager.start("flaky", {"fail_times": 0}, idempotency_key=key))

    threads = [threading.Thread(target=go) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.created for r in results) == 1 and len({r.run["id"] for r in results}) == 1
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(runs)
                         .where(runs.c.idempotency_key == key)).scalar() == 1
