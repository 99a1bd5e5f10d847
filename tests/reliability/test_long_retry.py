"""A retry delay past the broker's visibility timeout waits in Postgres, not in Redis
(celery#2599, kombu#337: a long countdown parked in Redis is delivered twice)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.broker import messages_for
from tests.support.polling import wait_for
from tests.support.processes import Worker
from tests.support.workflows import executions, store

pytestmark = [pytest.mark.slow, pytest.mark.redis_broker]


def test_a_retry_longer_than_the_visibility_timeout_fires_once_from_the_sweep(manager):
    # visibility timeout 40 s → countdowns up to 20 s; this step asks for 25 s
    worker = Worker(concurrency=2, env={"CELERY_VISIBILITY_TIMEOUT": "40"}).start()
    try:
        run_id = manager.start("long_retry", {}).run["id"]
        step = wait_for(
            lambda: (s := manager.get(run_id)["steps"][0])["status"] == "retrying" and s,
            what="the first attempt to fail",
        )
        wait_in = (step["next_attempt_at"] - datetime.now(UTC)).total_seconds()
        assert 20 < wait_in <= 25
        def nothing_parked() -> bool:
            return messages_for(run_id) == 0

        # the failed attempt's own message is acked as its task returns, a moment later
        wait_for(nothing_parked, timeout=10, what="the failed attempt's message to be acked")
        due = step["next_attempt_at"]

        def finished() -> bool:
            if (due - datetime.now(UTC)).total_seconds() > 1:
                assert nothing_parked(), "a message waits in Redis for the delayed retry"
            manager.recover()
            return manager.get(run_id)["status"] == "succeeded"

        wait_for(finished, timeout=60, interval=0.5, what="the sweep to send the retry when due")
    finally:
        worker.stop()
    times = [float(t) for t in store().lrange(f"times:{run_id}", 0, -1)]
    assert executions(run_id, "wait_long") == 2
    assert times[1] - times[0] >= 25
    assert manager.get(run_id)["steps"][0]["attempts"] == 2
