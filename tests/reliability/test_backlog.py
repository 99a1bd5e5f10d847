"""Recovery under a backlog: hundreds of queued steps of one workflow must not
hold up the sweep (control queue) or another workflow's re-sent run (its own
step queues). The real beat sweeps; nothing in the test sends anything."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from app.runtime import build_manager
from app.settings import get_settings
from tests.ops.conftest import beat
from tests.support.polling import wait_for
from tests.support.processes import Worker

BACKLOG = 300
UNFINISHED = sa.text(
    "SELECT count(*) FROM workflow_runs WHERE id = ANY(:ids) AND status IN ('pending', 'running')"
)


def test_a_lost_run_is_resent_and_finishes_while_another_workflows_backlog_drains(
    manager, engine, tmp_path: Path
):
    worker = Worker(concurrency=2).start()
    sweeper = beat(tmp_path / "schedule", {})
    try:
        backlog = [manager.start("busy", {"hold": 0.15}).run["id"] for _ in range(BACKLOG)]
        sweeper.start()
        # recorded in Postgres, its message never published (as if the broker lost it)
        lost = build_manager(get_settings(), dispatch=None).start("flaky", {}).run["id"]
        wait_for(lambda: manager.get(lost)["status"] == "succeeded", timeout=60, interval=0.2,
                 what="the sweep to re-send the lost run and a worker to finish it")
        with engine.connect() as c:
            left = int(c.execute(UNFINISHED, {"ids": backlog}).scalar_one())
        # still hundreds to go: the lost run did not wait for the backlog to drain
        assert left >= BACKLOG // 3, left
        assert manager.get(lost)["recovery_count"] == 0  # re-sent, not a lost worker

        def drained() -> bool:
            with engine.connect() as c:
                return int(c.execute(UNFINISHED, {"ids": backlog}).scalar_one()) == 0

        wait_for(drained, timeout=180, interval=1.0, what="the backlog to drain")
    finally:
        sweeper.stop()
        worker.stop()
