"""A real worker runs real runs; the tests read Postgres like an operator would."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from app.engine.errors import IllegalTransition
from tests.e2e.conftest import gate_id, wait_status
from tests.support.polling import wait_for
from tests.support.workflows import executions, store


def test_signup_goes_pending_running_succeeded_with_step_records(manager, worker, engine):
    email = f"ada-{uuid.uuid4().hex[:6]}@example.com"
    started = manager.start("signup", {"email": email, "name": "Ada", "plan": "pro"})
    assert started.created and started.run["status"] == "pending"
    assert [s["status"] for s in started.run["steps"]] == ["pending"] * 5

    run = wait_status(manager, started.run["id"], "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    assert run["started_at"] <= run["finished_at"]
    names = [s["name"] for s in run["steps"]]
    assert names == [
        "create_user", "provision_plan", "send_welcome_email", "notify_team", "send_welcome_sms"
    ]
    assert run["steps"][-1]["status"] == "skipped"  # no phone
    for step in run["steps"][:-1]:
        assert step["status"] == "succeeded"
        assert step["attempts"] == 1
        assert step["started_at"] <= step["finished_at"]
        assert step["error"] is None
    assert run["steps"][0]["output"]["email"] == email
    assert run["steps"][1]["output"]["customer_id"].startswith("cus_local_")
    assert run["output"]["send_welcome_email"]["to"] == email
    with engine.connect() as c:
        from sqlalchemy import text

        assert c.execute(text("SELECT count(*) FROM users WHERE email = :e"), {"e": email}).scalar() == 1


def test_a_second_signup_of_the_same_email_fails_without_retry(manager, worker):
    email = f"twice-{uuid.uuid4().hex[:6]}@example.com"
    first = manager.start("signup", {"email": email, "name": "One", "plan": "free"})
    assert wait_status(manager, first.run["id"], "succeeded", "failed")["status"] == "succeeded"
    second = manager.start("signup", {"email": email, "name": "Two", "plan": "free"})
    run = wait_status(manager, second.run["id"], "succeeded", "failed")
    assert run["status"] == "failed"
    assert run["error"]["type"] == "DuplicateSignup"
    assert run["error"]["step"] == "create_user"
    assert run["error"]["retryable"] is False
    assert run["steps"][0]["attempts"] == 1


def test_retryable_error_twice_then_success_takes_three_spaced_attempts(manager, worker):
    started = manager.start("flaky", {"fail_times": 2})
    run = wait_status(manager, started.run["id"], "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    call = run["steps"][1]
    assert (call["name"], call["attempts"], call["status"]) == ("call_api", 3, "succeeded")
    times = [float(t) for t in store().lrange(f"times:{run['id']}", 0, -1)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # policy: initial 0.3 s, multiplier 2, no jitter → 0.3 s then 0.6 s
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6
    assert gaps[1] > gaps[0]
    assert executions(run["id"], "prepare") == 1 and executions(run["id"], "finish") == 1


def test_non_retryable_error_fails_the_run_at_once_with_a_structured_error(manager, worker):
    started = manager.start("flaky", {"fatal": True})
    run = wait_status(manager, started.run["id"], "succeeded", "failed")
    assert run["status"] == "failed"
    assert run["error"] == {
        "type": "NonRetryableError",
        "message": "the API said 400: bad request",
        "step": "call_api",
        "attempt": 1,
        "retryable": False,
    }
    assert [s["status"] for s in run["steps"]] == ["succeeded", "failed", "pending"]
    assert run["steps"][1]["attempts"] == 1
    assert executions(run["id"], "finish") == 0


def test_non_serializable_output_fails_the_step_naming_the_type(manager, worker):
    started = manager.start("bad_output", {})
    run = wait_status(manager, started.run["id"], "succeeded", "failed")
    assert run["status"] == "failed"
    assert run["error"]["type"] == "OutputNotSerializable"
    assert "tests.support.workflows.NotJson" in run["error"]["message"]
    assert run["error"]["retryable"] is False


def test_duplicate_message_for_a_succeeded_step_does_not_run_it_again(manager, worker):
    from workers import app

    run_id = manager.start("flaky", {}).run["id"]
    wait_status(manager, run_id, "succeeded")
    result = app.send_task("flaky.prepare", args=(str(run_id),))
    wait_for(
        lambda: f'"task_id": "{result.id}"' in worker.output()
        and "step already succeeded" in worker.output(),
        what="the duplicate to be handled",
    )
    assert executions(run_id, "prepare") == 1
    assert manager.get(run_id)["steps"][0]["attempts"] == 1


def test_two_deliveries_at_once_run_the_body_once(manager, worker):
    from workers import app

    gate = gate_id()
    run_id = manager.start("gated", {"gate": gate}).run["id"]
    wait_for(lambda: store().sismember(f"arrived:{gate}", str(run_id)), what="step to block")
    duplicate = app.send_task("gated.blocked", args=(str(run_id),))
    wait_for(
        lambda: f'"task_id": "{duplicate.id}"' in worker.output()
        and "step not claimed" in worker.output(),
        what="the duplicate to be refused",
    )
    store().set(f"gate:{gate}", 1)
    run = wait_status(manager, run_id, "succeeded")
    assert executions(run_id, "blocked") == 1
    assert run["steps"][1]["attempts"] == 1


def test_a_step_sent_without_its_chain_continues_from_postgres(manager, worker):
    """celery#6631: the rest of a chain can be lost; Postgres knows what is left."""
    from app.engine.manager import WorkflowManager
    from workers import app

    silent = WorkflowManager(manager.engine, manager.registry, dispatch=None)
    run_id = silent.start("flaky", {}).run["id"]
    app.send_task("flaky.prepare", args=(str(run_id),))  # no chain attached
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded"
    assert [executions(run_id, s) for s in ("prepare", "call_api", "finish")] == [1, 1, 1]


def test_retry_of_a_failed_run_resumes_at_the_failed_step(manager, worker):
    gate = gate_id()
    run_id = manager.start("fixable", {"gate": gate}).run["id"]
    failed = wait_status(manager, run_id, "failed")
    assert failed["error"]["step"] == "needs_fix"
    store().set(f"gate:{gate}", 1)
    retried = manager.retry(run_id)
    assert retried["status"] in ("pending", "running", "succeeded")
    run = wait_status(manager, run_id, "succeeded")
    assert run["error"] is None
    assert executions(run_id, "setup") == 1  # not re-run
    assert executions(run_id, "needs_fix") == 2
    assert executions(run_id, "wrap_up") == 1


def test_cancelling_a_running_run_stops_it_before_the_next_step(manager, worker):
    gate = gate_id()
    run_id = manager.start("gated", {"gate": gate}).run["id"]
    wait_for(lambda: store().sismember(f"arrived:{gate}", str(run_id)), what="step to block")
    cancelled = manager.cancel(run_id)
    assert cancelled["status"] == "cancelled"
    store().set(f"gate:{gate}", 1)
    # the running step may finish; its checkpoint sees the cancel and ends the chain
    wait_for(
        lambda: any(
            str(run_id) in line and '"step": "blocked"' in line
            and '"run_status": "cancelled"' in line
            for line in worker.output().splitlines()
        ),
        what="the running step to finish and see the cancel",
    )
    wait_for(
        lambda: f"gated.blocked[{blocked_task_id(worker, run_id)}] succeeded" in worker.output(),
        what="the step task to return",
    )
    assert run_id not in manager.recover().resent  # a cancelled run is never re-sent
    run = manager.get(run_id)
    assert run["status"] == "cancelled"
    assert run["steps"][2]["status"] == "pending"
    assert executions(run_id, "last") == 0
    assert not [
        line for line in worker.output().splitlines()
        if str(run_id) in line and '"step": "last"' in line
    ]


def blocked_task_id(worker, run_id) -> str:
    import json

    for line in worker.output().splitlines():
        if line.startswith("{") and str(run_id) in line and '"step": "blocked"' in line:
            return json.loads(line)["task_id"]
    return "?"


def _race(action: Any, run_id: uuid.UUID, n: int = 2) -> tuple[list[Any], list[Exception]]:
    barrier = threading.Barrier(n)
    wins: list[Any] = []
    losses: list[Exception] = []

    def go() -> None:
        barrier.wait()
        try:
            wins.append(action(run_id))
        except IllegalTransition as exc:
            losses.append(exc)

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins, losses


@pytest.mark.parametrize("round_", range(3))
def test_two_concurrent_cancels_exactly_one_wins(manager, worker, round_):
    gate = gate_id()
    run_id = manager.start("gated", {"gate": gate}).run["id"]
    wins, losses = _race(manager.cancel, run_id, n=4)
    assert len(wins) == 1 and len(losses) == 3
    assert "cannot cancel a run that is cancelled" in str(losses[0])
    store().set(f"gate:{gate}", 1)


@pytest.mark.parametrize("round_", range(3))
def test_two_concurrent_retries_exactly_one_wins(manager, worker, round_):
    gate = gate_id()
    run_id = manager.start("fixable", {"gate": gate}).run["id"]
    wait_status(manager, run_id, "failed")
    store().set(f"gate:{gate}", 1)
    wins, losses = _race(manager.retry, run_id, n=4)
    assert len(wins) == 1 and len(losses) == 3
    assert wait_status(manager, run_id, "succeeded")["status"] == "succeeded"
    assert executions(run_id, "needs_fix") == 2


def test_step_outputs_stay_out_of_celerys_results_and_events(manager, worker):
    """Issue 12 item 14: the task's return value (logged, and sent in task events to
    Flower) carried every output: emails, user ids, customer ids."""
    email = f"secret-{uuid.uuid4().hex[:8]}@example.com"
    run_id = manager.start("signup", {"email": email, "name": "Quiet", "plan": "free"}).run["id"]
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded"
    assert run["output"]["create_user"]["email"] == email  # Postgres has it
    succeeded = [
        line for line in worker.output().splitlines()
        if str(run_id) in line and "succeeded in" in line
    ]
    assert len(succeeded) == 5
    assert all("s: None" in line for line in succeeded)  # what the event carries as result
    assert not any(email in line for line in succeeded)
