"""Waits, branches, joins and undo, each alone, against real Postgres, Redis and
worker processes. The test acts as the sweep (``manager.recover()``) where beat
would; the reliability suite runs the real beat."""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa

from app.engine.errors import RunFinished, UnknownSignal
from tests.e2e.conftest import gate_id
from tests.support.polling import wait_for
from tests.support.workflows import executions, store

FINISHED = ("succeeded", "failed", "cancelled")


def settle(manager, run_id, *statuses: str, timeout: float = 40.0) -> dict:
    """Wait for the run to reach a status, sweeping as beat would."""
    wanted = statuses or FINISHED

    def done() -> dict | None:
        manager.recover()
        run = manager.get(run_id)
        return run if run["status"] in wanted else None

    return wait_for(done, timeout=timeout, interval=0.2, what=f"run {run_id} to be {wanted}")


def step(run: dict, name: str) -> dict:
    return next(s for s in run["steps"] if s["name"] == name)


def open_gate(gate: str) -> None:
    store().set(f"gate:{gate}", 1)


def arrived(gate: str, run_id) -> None:
    wait_for(lambda: store().sismember(f"arrived:{gate}", str(run_id)), timeout=30,
             what="the step to block")


# -- signals ---------------------------------------------------------------------------


def test_a_signal_sent_before_the_run_waits_is_kept_and_becomes_the_steps_output(
    manager, worker
):
    gate = gate_id()
    run_id = manager.start("waits", {"gate": gate}).run["id"]
    arrived(gate, run_id)  # still in the step before the wait
    manager.signal(run_id, "go", {"approved_by": "ada"})
    open_gate(gate)
    run = settle(manager, run_id)
    assert run["status"] == "succeeded", run["error"]
    assert step(run, "wait_go")["output"] == {"approved_by": "ada"}
    assert step(run, "on_signal")["output"] == {"got": {"approved_by": "ada"}}
    assert executions(run_id, "on_signal") == 1


def test_a_signal_repeated_with_one_idempotency_key_is_stored_once(manager, engine, worker):
    run_id = manager.start("waits", {}).run["id"]
    for _ in range(3):
        manager.signal(run_id, "go", {"n": 1}, idempotency_key="click-1")
    with engine.connect() as c:
        stored = c.execute(sa.text(
            "SELECT count(*) FROM workflow_signals WHERE run_id = :r"), {"r": run_id}).scalar()
    assert stored == 1
    assert settle(manager, run_id)["status"] == "succeeded"


def test_an_unknown_signal_or_a_finished_run_is_refused(manager, worker):
    run_id = manager.start("waits", {}).run["id"]
    with pytest.raises(UnknownSignal, match="declares no signal 'stop'"):
        manager.signal(run_id, "stop", {})
    manager.cancel(run_id)
    with pytest.raises(RunFinished, match="cancelled"):
        manager.signal(run_id, "go", {})


def test_a_wait_that_times_out_succeeds_with_timed_out_and_later_conditions_branch(
    manager, worker
):
    run_id = manager.start("waits", {"timeout": 1.0}).run["id"]
    waiting = wait_for(lambda: (r := manager.get(run_id)) and
                       step(r, "wait_go")["status"] == "waiting" and r, what="the wait")
    assert step(waiting, "wait_go")["wake_at"] is not None
    run = settle(manager, run_id)
    assert run["status"] == "succeeded"
    assert step(run, "wait_go")["output"] == {"timed_out": True}
    assert step(run, "on_signal")["status"] == "skipped"
    assert executions(run_id, "on_signal") == 0
    assert step(run, "woke")["status"] == "succeeded"


# -- waiting costs no worker ------------------------------------------------------------------


def test_five_hundred_waiting_runs_hold_no_worker_while_signups_go_through(manager, worker):
    waiting = [manager.start("waits", {"timeout": 3600}).run["id"] for _ in range(500)]

    def all_waiting() -> bool:
        with manager.engine.connect() as c:
            return c.execute(sa.text(
                "SELECT count(*) FROM workflow_steps WHERE name = 'wait_go' "
                "AND status = 'waiting' AND run_id = ANY(:ids)"), {"ids": waiting}).scalar() == 500

    wait_for(all_waiting, timeout=180, interval=0.5, what="500 runs waiting")
    t0 = time.monotonic()
    signups = [
        manager.start("signup", {"email": f"w-{uuid.uuid4().hex[:8]}@example.com",
                                 "name": "W", "plan": "free"}).run["id"]
        for _ in range(5)
    ]
    for run_id in signups:
        assert settle(manager, run_id, timeout=60)["status"] == "succeeded"
    elapsed = time.monotonic() - t0
    assert all(manager.get(r)["status"] == "running" for r in waiting[:20])
    print(f"5 signups beside 500 waiting runs: {elapsed:.2f} s")
