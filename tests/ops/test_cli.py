"""``flask --app app workflows ...`` on the same WorkflowManager as the API."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from app import create_app
from app.runtime import build_manager
from app.settings import get_settings
from tests.e2e.conftest import wait_status
from tests.ops.conftest import OPS_ENV
from tests.support.environment import TEST_ENV
from tests.support.processes import ROOT, VENV_BIN


@pytest.fixture(scope="module")
def runner(database: str):  # type: ignore[no-untyped-def]
    return create_app().test_cli_runner()


def test_list_and_show_print_runs_and_their_steps(runner, manager, ops_worker):
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    run_id = str(manager.start("signup", {"email": email, "name": "C", "plan": "free"}).run["id"])
    wait_status(manager, run_id, "succeeded", "failed")

    listed = runner.invoke(args=["workflows", "list", "--name", "signup", "--limit", "5"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[0].split() == ["ID", "WORKFLOW", "STATUS", "CREATED",
                                                     "FINISHED"]
    row = next(line for line in listed.output.splitlines() if line.startswith(run_id))
    assert row.split()[1:3] == ["signup", "succeeded"]

    shown = runner.invoke(args=["workflows", "show", run_id])
    assert shown.exit_code == 0, shown.output
    run = json.loads(shown.output)
    assert run["id"] == run_id and run["status"] == "succeeded"
    assert [s["name"] for s in run["steps"]] == [
        "create_user", "provision_plan", "send_welcome_email", "notify_team", "send_welcome_sms"
    ]
    # the API's JSON, field for field: ISO times, every attempt in history
    api = runner.app.test_client().get(f"/api/v1/workflows/{run_id}").get_json()
    assert run == api
    assert "T" in run["created_at"] and run["created_at"].endswith("+00:00")
    first = run["steps"][0]["history"]
    assert [(a["attempt"], a["status"]) for a in first] == [(1, "succeeded")]


def test_cancel_then_retry_resumes_the_run_and_illegal_moves_exit_with_the_error_code(
    runner, manager, ops_worker
):
    # recorded but never sent (as if the broker was down): pending until someone acts
    run_id = str(build_manager(get_settings(), dispatch=None).start("flaky", {}).run["id"])
    cancelled = runner.invoke(args=["workflows", "cancel", run_id])
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.output.strip() == f"{run_id} cancelled"

    again = runner.invoke(args=["workflows", "cancel", run_id])
    assert again.exit_code == 1
    assert "illegal_transition: cannot cancel a run that is cancelled" in again.output

    retried = runner.invoke(args=["workflows", "retry", run_id])
    assert retried.exit_code == 0, retried.output
    assert retried.output.strip() == f"{run_id} pending"
    assert wait_status(manager, run_id, "succeeded", "failed")["status"] == "succeeded"

    missing = runner.invoke(args=["workflows", "show", str(uuid.uuid4())])
    assert missing.exit_code == 1 and "run_not_found" in missing.output


def test_recover_resends_a_run_that_was_never_sent(runner, manager, ops_worker, engine):
    run_id = str(build_manager(get_settings(), dispatch=None).start("flaky", {}).run["id"])
    with engine.begin() as c:  # older than the recovery grace, as after an outage
        c.exec_driver_sql(
            "UPDATE workflow_steps SET dispatched_at = now() - interval '1 minute' "
            "WHERE run_id = %s AND dispatched_at IS NOT NULL",
            (run_id,),
        )
    recovered = runner.invoke(args=["workflows", "recover"])
    assert recovered.exit_code == 0, recovered.output
    assert f"resent {run_id}" in recovered.output
    assert wait_status(manager, run_id, "succeeded", "failed")["status"] == "succeeded"


def test_the_flask_command_line_runs_the_cli_in_a_real_process(database):
    env = {**os.environ, **TEST_ENV, **OPS_ENV, "LOG_FORMAT": "text"}
    out = subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "app", "workflows", "list", "--limit", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ID")
