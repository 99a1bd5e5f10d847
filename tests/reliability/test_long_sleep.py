"""An hour-long durable sleep under a visibility timeout of 40 seconds: it parks
in Postgres (no message waits in the broker), survives the worker and beat being
SIGKILLed and restarted, and fires once, from the real beat's sweep, when due.

The hour is not waited out: when the restarted processes are up, the test moves
the step's ``wake_at`` (the only clock the sleep has) to a few seconds from now.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.engine.models import steps
from tests.ops.conftest import beat
from tests.support.broker import messages_for
from tests.support.polling import wait_for
from tests.support.processes import Worker
from tests.support.workflows import executions, store

pytestmark = [pytest.mark.slow, pytest.mark.redis_broker]

VISIBILITY = "40"  # seconds (the least the settings allow here): countdowns up to 20 s
HOUR = 3600.0


def nap(manager, run_id) -> dict:
    return next(s for s in manager.get(run_id)["steps"] if s["name"] == "nap")


def test_an_hour_long_sleep_parks_in_postgres_and_fires_once_across_worker_and_beat_restarts(
    manager, engine, tmp_path: Path
):
    env = {"CELERY_VISIBILITY_TIMEOUT": VISIBILITY}
    schedule = tmp_path / "beat-schedule"
    worker = Worker(concurrency=2, env=env).start()
    sweeper = beat(schedule, env)
    sweeper.start()
    try:
        run_id = manager.start("waits", {"nap": HOUR}).run["id"]
        manager.signal(run_id, "go", {})
        sleeping = wait_for(lambda: (s := nap(manager, run_id))["status"] == "waiting" and s,
                            timeout=30, what="the hour-long sleep to start")
        left = (sleeping["wake_at"] - datetime.now(UTC)).total_seconds()
        assert HOUR - 60 < left <= HOUR
        # nothing for it waits in Redis, where a countdown past the visibility
        # timeout would be delivered again and again
        wait_for(lambda: messages_for(run_id) == 0, timeout=10, what="the broker to hold nothing")

        worker.kill()
        sweeper.kill()
        sweeper.stop()
        worker.stop()
        assert nap(manager, run_id)["status"] == "waiting"

        worker = Worker(concurrency=2, env=env).start()
        sweeper = beat(schedule, env)
        sweeper.start()
        # sweeps and visibility timeouts come and go: the sleep stays asleep
        wait_for(lambda: "Sending due task recovery-sweep" in sweeper.output(), timeout=30,
                 what="the restarted beat to sweep")
        assert nap(manager, run_id)["status"] == "waiting" and executions(run_id, "woke") == 0
        assert messages_for(run_id) == 0

        due = datetime.now(UTC) + timedelta(seconds=3)
        with engine.begin() as c:  # the hour has passed
            c.execute(steps.update().where(steps.c.run_id == run_id, steps.c.name == "nap")
                      .values(wake_at=due))
        wait_for(lambda: manager.get(run_id)["status"] == "succeeded", timeout=60, interval=0.5,
                 what="the beat's sweep to wake the sleep and the run to finish")
        time.sleep(5)  # sweeps go on: no second wake-up
    finally:
        sweeper.stop()
        worker.stop()
    assert executions(run_id, "woke") == 1
    woke = float(store().lrange(f"woke:{run_id}", 0, -1)[0])
    assert woke >= due.timestamp() - 1.0  # not early (the claim allows 1 s of clock slack)
    rows = {s["name"]: s for s in manager.get(run_id)["steps"]}
    assert rows["nap"]["status"] == "succeeded" and rows["nap"]["attempts"] == 1
    assert rows["woke"]["attempts"] == 1
