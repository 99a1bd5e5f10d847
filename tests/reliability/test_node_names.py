"""Two workers with one node name (containers sharing a hostname, ``-n w@localhost``
on two hosts): the second runs in its own pid namespace, as on another host, so
the first's pids do not exist there. A duplicate delivery of a step the first is
running must not be taken over as "its holder died"; once the first is SIGKILLed,
the step runs again after its lease runs out — one body at a time. With RabbitMQ
the twin cannot even start: the broker refuses a second exclusive pidbox queue."""

from __future__ import annotations

import shutil
import time
import uuid

import pytest

from tests.support.environment import BROKER_KIND
from tests.support.polling import wait_for
from tests.support.processes import Worker
from tests.support.workflows import executions, store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)"),
]

ENV = {"WORKFLOW_STEP_TIMEOUT": "6"}  # the lease: 6 s + 1.5 s + 1.5 s


@pytest.mark.skipif(BROKER_KIND != "amqp", reason="RabbitMQ's own refusal")
def test_with_rabbitmq_a_second_worker_of_the_same_node_name_refuses_to_start(manager):
    node = f"twin-{uuid.uuid4().hex[:6]}@localhost"
    first = Worker(concurrency=1, node=node, env=ENV).start()
    try:
        with pytest.raises(RuntimeError, match="RESOURCE_LOCKED") as refused:
            Worker(concurrency=1, node=node, env=ENV).start()
        assert f"{node}.celery.pidbox" in str(refused.value)
        run_id = manager.start("flaky", {}).run["id"]  # the first keeps working

        wait_for(lambda: manager.get(run_id)["status"] == "succeeded", timeout=30,
                 what="the first worker to run a workflow")
    finally:
        first.stop()


@pytest.mark.skipif(BROKER_KIND == "amqp", reason="RabbitMQ refuses the twin (above)")
def test_a_worker_sharing_a_node_name_never_takes_over_a_live_lease(manager):
    node = f"twin-{uuid.uuid4().hex[:6]}@localhost"
    first = Worker(concurrency=1, node=node, env=ENV).start()
    other = None
    try:
        gate = uuid.uuid4().hex[:10]
        run_id = manager.start("gated", {"gate": gate}).run["id"]
        wait_for(lambda: store().sismember(f"arrived:{gate}", str(run_id)), timeout=30,
                 what="the first worker to be inside the step")
        other = Worker(concurrency=1, node=node, env=ENV,
                       wrap=["unshare", "--pid", "--fork"]).start()
        # a duplicate of the step's message (a redelivery, a sweep's re-send): the first
        # worker's only slot is busy, so the twin gets it and finds the lease held
        manager.send(run_id, "gated", ["blocked"])
        wait_for(lambda: "step not claimed" in other.output()
                 or "taking the step over" in other.output(), timeout=20,
                 what="the twin to receive the duplicate")
        time.sleep(0.5)
        assert "taking the step over" not in other.output()
        assert executions(run_id, "blocked") == 1, "the twin ran the step beside its live holder"

        first.kill()  # now its holder really is gone: the lease runs out and the sweep re-sends
        store().set(f"gate:{gate}", 1)

        def finished() -> bool:
            manager.recover()
            return manager.get(run_id)["status"] == "succeeded"

        wait_for(finished, timeout=60, interval=0.5, what="the twin to finish the run")
    finally:
        first.stop()
        if other is not None:
            other.stop()
    assert executions(run_id, "blocked") == 2  # the killed body, then the twin's, in turn
    run = manager.get(run_id)
    assert run["recovery_count"] == 1
