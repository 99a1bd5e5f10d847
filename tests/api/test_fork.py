"""POST /api/v1/workflows/<id>/fork (DESIGN §12): a new run that reuses the outputs
of the steps before the named one and runs the rest; the source is untouched."""

from __future__ import annotations

from tests.api.conftest import assert_error
from tests.e2e.conftest import gate_id, wait_status
from tests.support.workflows import executions, store


def fork(client, run_id, body):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/workflows/{run_id}/fork", json=body)


def test_a_fork_reuses_earlier_outputs_and_reruns_from_the_step(client, manager, worker):
    gate = gate_id()
    source_id = manager.start("fixable", {"gate": gate}).run["id"]
    source = wait_status(manager, source_id, "failed")
    assert source["error"]["step"] == "needs_fix"
    store().set(f"gate:{gate}", 1)  # the bug is fixed

    response = fork(client, source_id, {"from_step": "needs_fix"})
    assert response.status_code == 202, response.get_data(as_text=True)
    forked = response.get_json()
    assert forked["id"] != str(source_id)
    assert forked["forked_from"] == {"run_id": str(source_id), "step": "needs_fix"}
    done = wait_status(manager, forked["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    setup = next(s for s in done["steps"] if s["name"] == "setup")
    assert setup["output"] == next(s for s in source["steps"] if s["name"] == "setup")["output"]
    assert setup["attempts"] == 0  # reused, not run
    # side effects: setup ran once in all (for the source); the rest ran for the fork
    assert executions(source_id, "setup") == 1 and executions(forked["id"], "setup") == 0
    assert executions(forked["id"], "needs_fix") == 1
    assert executions(forked["id"], "wrap_up") == 1
    # the source run is not changed
    again = manager.get(source_id)
    assert again["status"] == "failed"
    assert [s["status"] for s in again["steps"]] == [s["status"] for s in source["steps"]]


def test_a_fork_with_new_input_validates_it(client, manager, worker):
    source_id = manager.start("flaky", {"fatal": True}).run["id"]
    wait_status(manager, source_id, "failed")
    bad = fork(client, source_id, {"from_step": "call_api", "input": {"fail_times": "many"}})
    assert_error(bad, 422, "invalid_input")
    good = fork(client, source_id, {"from_step": "call_api", "input": {"fatal": False}})
    assert good.status_code == 202
    done = wait_status(manager, good.get_json()["id"], "succeeded", "failed")
    assert done["status"] == "succeeded" and done["input"]["fatal"] is False


def test_fork_refuses_an_active_run_an_unknown_step_and_unknown_runs(client, manager):
    from app.engine.manager import WorkflowManager

    silent = WorkflowManager(manager.engine, manager.registry, dispatch=None)
    active = silent.start("flaky", {}).run["id"]
    assert_error(fork(client, active, {"from_step": "prepare"}), 409, "illegal_transition")
    silent.cancel(active)
    assert_error(fork(client, active, {"from_step": "nope"}), 422, "invalid_input")
    # call_api depends on prepare, which never ran in the cancelled source
    assert_error(fork(client, active, {"from_step": "call_api"}), 422, "invalid_input")
    assert_error(fork(client, "00000000-0000-0000-0000-000000000000", {"from_step": "prepare"}),
                 404, "run_not_found")
    assert_error(fork(client, active, {}), 422, "invalid_input")
