"""SIGTERM to a worker in the middle of steps, then a restart: nothing lost, nothing doubled."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.conftest import wait_status
from tests.ops.conftest import OPS_ENV, gate_id, open_gate
from tests.support.polling import wait_for
from tests.support.processes import Worker
from tests.support.workflows import executions, store

RUNS = 4


@pytest.mark.slow
@pytest.mark.parametrize("target", ["main process", "process group"])
def test_sigterm_mid_step_lets_steps_finish_and_a_restart_completes_every_run(
    manager, database, target
):
    gate = gate_id()
    worker = Worker(concurrency=2, env=OPS_ENV).start()
    try:
        run_ids = [manager.start("gated", {"gate": gate}).run["id"] for _ in range(RUNS)]
        # two runs are inside their transactional step; the others wait in the queue
        wait_for(lambda: store().scard(f"arrived:{gate}") == 2, timeout=30, what="2 steps running")
        inside = [r for r in run_ids if store().sismember(f"arrived:{gate}", str(r))]

        assert worker.proc is not None
        if target == "main process":
            worker.proc.send_signal(signal.SIGTERM)  # `kill <pid>`: Celery's warm shutdown
        else:
            worker.signal_group(signal.SIGTERM)  # what honcho and docker do
        wait_for(lambda: "Warm shutdown" in worker.output(), timeout=10, what="warm shutdown")
        assert worker.alive  # waiting for its running steps, not killed
        open_gate(gate)
        assert worker.wait(30), "the worker did not exit after its steps finished"
        for run_id in inside:  # both steps finished and checkpointed before the exit
            blocked = manager.get(run_id)["steps"][1]
            assert (blocked["name"], blocked["status"]) == ("blocked", "succeeded")
    finally:
        worker.stop()

    restarted = Worker(concurrency=2, env=OPS_ENV).start()
    try:
        for run_id in run_ids:
            run = wait_status(manager, run_id, "succeeded", "failed", timeout=60)
            assert run["status"] == "succeeded", run["error"]
    finally:
        restarted.stop()
    for run_id in run_ids:
        assert [executions(run_id, s) for s in ("first", "blocked", "last")] == [1, 1, 1]
    assert "Warm shutdown" in worker.output()
