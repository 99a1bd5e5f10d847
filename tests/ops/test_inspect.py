"""``celery inspect`` against a real worker that is in the middle of a step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import wait_status
from tests.ops.conftest import celery, celery_json, gate_id, open_gate, wait_arrived


def test_inspect_registered_and_current_steps_show_the_running_step_and_run(
    manager, ops_worker
):
    gate = gate_id()
    run_id = manager.start("watched", {"gate": gate}).run["id"]
    wait_arrived(gate, run_id)
    try:
        registered = celery_json("inspect", "registered", "-d", ops_worker.node)[ops_worker.node]
        for task in ("watched.first", "watched.blocked", "watched.last", "signup.create_user",
                     "signup_digest.count_signups", "stepwise.recover", "stepwise.start_scheduled"):
            assert task in registered

        current = celery_json("inspect", "current_steps", "-d", ops_worker.node)[ops_worker.node]
        mine = [c for c in current if c["run_id"] == str(run_id)]
        assert len(mine) == 1, current
        assert (mine[0]["workflow"], mine[0]["step"]) == ("watched", "blocked")
        since = datetime.fromisoformat(mine[0]["since"])
        assert datetime.now(UTC) - timedelta(seconds=60) < since <= datetime.now(UTC)

        text = celery("inspect", "current_steps", "-d", ops_worker.node)
        assert text.returncode == 0, text.stderr
        assert str(run_id) in text.stdout and "'step': 'blocked'" in text.stdout
    finally:
        open_gate(gate)
    assert wait_status(manager, run_id, "succeeded", "failed")["status"] == "succeeded"
    after = celery_json("inspect", "current_steps", "-d", ops_worker.node)[ops_worker.node]
    assert all(c["run_id"] != str(run_id) for c in after)
