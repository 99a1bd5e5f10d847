"""Durable sleeps, joins and compensation across SIGKILLed workers.

Apart from ``test_primitives`` on purpose: each test here starts its own
workers and kills them, so no other worker may be alive to take its steps (the
module-scoped ``worker`` of another module ends with that module). The test acts
as the sweep (``manager.recover()``) where beat would.
"""

from __future__ import annotations

from tests.e2e.conftest import gate_id
from tests.e2e.test_primitives import arrived, open_gate, settle, step
from tests.support.polling import wait_for
from tests.support.processes import Worker
from tests.support.workflows import executions, store

# -- durable sleep ------------------------------------------------------------------------


def test_a_durable_sleep_holds_no_worker_and_fires_once_across_a_worker_restart(
    manager, database
):
    first = Worker(concurrency=1).start()
    try:
        run_id = manager.start("waits", {"nap": 3.0}).run["id"]
        manager.signal(run_id, "go", {})
        sleeping = wait_for(
            lambda: (r := manager.get(run_id)) and step(r, "nap")["status"] == "waiting" and r,
            timeout=30, what="the sleep to start",
        )
        wake_at = step(sleeping, "nap")["wake_at"]
        # the only worker slot is free while the run sleeps: another run goes through
        other = manager.start("flaky", {}).run["id"]
        assert settle(manager, other)["status"] == "succeeded"
        first.kill()
    finally:
        first.stop()
    second = Worker(concurrency=1).start()
    try:
        run = settle(manager, run_id, timeout=60)
    finally:
        second.stop()
    assert run["status"] == "succeeded"
    assert executions(run_id, "woke") == 1
    woke = float(store().lrange(f"woke:{run_id}", 0, -1)[0])
    assert woke >= wake_at.timestamp() - 1.0  # not early (the claim allows 1 s of clock slack)


# -- parallel branches and a join -----------------------------------------------------------


def test_a_join_is_sent_once_when_a_branch_worker_is_sigkilled(manager, database):
    gate = gate_id()
    first = Worker(concurrency=2).start()
    try:
        run_id = manager.start("fanout", {"gate": gate}).run["id"]
        arrived(gate, run_id)
        wait_for(lambda: step(manager.get(run_id), "right")["status"] == "succeeded",
                 what="the other branch")
        first.kill()
    finally:
        first.stop()
    open_gate(gate)
    second = Worker(concurrency=2).start()
    try:
        run = settle(manager, run_id, timeout=60)
    finally:
        second.stop()
    assert run["status"] == "succeeded", run["error"]
    assert [executions(run_id, s) for s in ("split", "left", "right", "join")] == [1, 1, 1, 1]
    assert step(run, "join")["attempts"] == 1
    left = step(run, "left")
    assert (left["history"][0]["error"] or {}).get("type") == "WorkerLost", left


# -- compensation ---------------------------------------------------------------------------


def test_compensation_runs_in_reverse_and_resumes_after_a_sigkill(manager, database):
    gate = gate_id()
    first = Worker(concurrency=2).start()
    try:
        run_id = manager.start("saga", {"gate": gate}).run["id"]
        arrived(gate, run_id)  # refund, the first undo, is mid-body
        running = manager.get(run_id)
        assert running["status"] == "running" and running["error"]["type"] == "Declined"
        first.kill()
    finally:
        first.stop()
    open_gate(gate)
    second = Worker(concurrency=2).start()
    try:
        run = settle(manager, run_id, "failed", timeout=60)
    finally:
        second.stop()
    assert run["error"]["type"] == "Declined" and run["error"]["step"] == "ship"
    assert {s["name"]: s["status"] for s in run["steps"]} == {
        "reserve": "compensated",
        "charge": "compensated",
        "ship": "failed",
        "undo_reserve": "succeeded",
        "undo_charge": "succeeded",
    }
    assert store().lrange(f"undo:{run_id}", 0, -1) == ["refund", "release"]
    assert executions(run_id, "ship") == 1  # non-retryable: one attempt
