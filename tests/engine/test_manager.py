"""WorkflowManager against the real database, with a recording dispatcher
(the seam the manager is given at start-up) instead of Celery."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.engine.errors import (
    IdempotencyConflict,
    IllegalTransition,
    InvalidInput,
    RunNotFound,
    UnknownWorkflow,
)
from app.engine.manager import WorkflowManager
from app.engine.models import runs, steps


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[uuid.UUID, str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, run_id: uuid.UUID, workflow: str, names: list[str]) -> None:
        with self.lock:
            self.sent.extend((run_id, workflow, name) for name in names)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def mgr(manager, recorder) -> WorkflowManager:
    return WorkflowManager(
        manager.engine,
        manager.registry,
        recovery_grace=0,
        recovery_limit=2,
        dispatch=recorder,
    )


def signup_input(**extra: str) -> dict[str, str]:
    return {"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "name": "U", "plan": "free", **extra}


def test_start_records_run_and_steps_then_sends_once(mgr, recorder):
    result = mgr.start("signup", signup_input())
    run = result.run
    assert result.created and run["status"] == "pending"
    assert [s["name"] for s in run["steps"]] == [
        "create_user", "provision_plan", "send_welcome_email", "notify_team", "send_welcome_sms"
    ]
    # the chain goes out from the sender thread, once the run is durable
    assert mgr.flush_sends()
    assert recorder.sent == [(run["id"], "signup", "create_user")]


def test_invalid_input_names_each_bad_field_and_records_nothing(mgr, recorder, engine):
    with engine.connect() as c:
        before = c.execute(sa.select(sa.func.count()).select_from(runs)).scalar()
    with pytest.raises(InvalidInput) as err:
        mgr.start("signup", {"email": "nope", "name": "", "plan": "gold"})
    assert set(err.value.details["input"]) == {"email", "name", "plan"}
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(runs)).scalar() == before
    assert recorder.sent == []


def test_unknown_workflow_is_refused(mgr):
    with pytest.raises(UnknownWorkflow):
        mgr.start("nope", {})


def test_same_key_same_body_returns_the_same_run(mgr, recorder):
    key = uuid.uuid4().hex
    body = signup_input()
    a = mgr.start("signup", body, idempotency_key=key)
    b = mgr.start("signup", dict(body), idempotency_key=key)
    assert a.created and not b.created
    assert a.run["id"] == b.run["id"]
    assert mgr.flush_sends()
    assert len(recorder.sent) == 1


def test_same_key_other_body_conflicts(mgr):
    key = uuid.uuid4().hex
    mgr.start("signup", signup_input(), idempotency_key=key)
    with pytest.raises(IdempotencyConflict):
        mgr.start("signup", signup_input(), idempotency_key=key)


def test_the_same_key_may_be_used_by_two_workflows(mgr):
    key = uuid.uuid4().hex
    a = mgr.start("flaky", {}, idempotency_key=key)
    b = mgr.start("bad_output", {}, idempotency_key=key)
    assert a.run["id"] != b.run["id"]


def test_twenty_concurrent_starts_with_one_key_make_one_run(mgr, recorder, engine):
    key = uuid.uuid4().hex
    body = signup_input()
    barrier = threading.Barrier(20)
    results = []

    def go() -> None:
        barrier.wait()
        results.append(mgr.start("signup", body, idempotency_key=key))

    threads = [threading.Thread(target=go) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    assert len({r.run["id"] for r in results}) == 1
    assert sum(r.created for r in results) == 1
    with engine.connect() as c:
        assert c.execute(
            sa.select(sa.func.count()).select_from(runs).where(runs.c.idempotency_key == key)
        ).scalar() == 1
    assert mgr.flush_sends()
    assert len(recorder.sent) == 1


def test_list_is_newest_first_with_keyset_pages_and_filters(mgr):
    name = "flaky"
    made = [mgr.start(name, {"fail_times": i}).run["id"] for i in range(5)]
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        items, cursor = mgr.list(name=name, limit=2, cursor=cursor)
        seen += [i["id"] for i in items]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))  # no run on two pages
    assert [s for s in seen if s in made] == list(reversed(made))  # all of ours, newest first
    assert all(i["name"] == name for i in mgr.list(name=name, limit=500)[0])
    assert all(i["status"] == "pending" for i in mgr.list(status="pending", limit=50)[0])


def test_a_garbled_cursor_is_invalid_input(mgr):
    with pytest.raises(InvalidInput):
        mgr.list(cursor="!!not-a-cursor!!")


def test_get_unknown_or_malformed_id_is_not_found(mgr):
    with pytest.raises(RunNotFound):
        mgr.get(uuid.uuid4())
    with pytest.raises(RunNotFound):
        mgr.get("not-a-uuid")


def test_cancel_then_cancel_again_is_illegal(mgr):
    run_id = mgr.start("flaky", {}).run["id"]
    assert mgr.cancel(run_id)["status"] == "cancelled"
    with pytest.raises(IllegalTransition, match="cannot cancel a run that is cancelled"):
        mgr.cancel(run_id)


def test_retry_of_a_pending_run_is_illegal(mgr):
    run_id = mgr.start("flaky", {}).run["id"]
    with pytest.raises(IllegalTransition, match="cannot retry a run that is pending"):
        mgr.retry(run_id)


def test_retry_of_a_cancelled_run_resumes_at_its_first_unfinished_step(mgr, recorder, engine):
    run_id = mgr.start("flaky", {}).run["id"]
    with engine.begin() as c:
        c.execute(
            steps.update()
            .where(steps.c.run_id == run_id, steps.c.position == 0)
            .values(status="succeeded", output={"n": 1}, attempts=1)
        )
    mgr.cancel(run_id)
    assert mgr.flush_sends()
    recorder.sent.clear()
    run = mgr.retry(run_id)
    assert run["status"] == "pending"
    assert recorder.sent == [(run_id, "flaky", "call_api")]


def _age(engine, run_id, seconds: float) -> None:
    """As if the run's ready steps had been sent ``seconds`` ago."""
    with engine.begin() as c:
        c.execute(
            runs.update()
            .where(runs.c.id == run_id)
            .values(updated_at=sa.func.now() - timedelta(seconds=seconds))
        )
        c.execute(
            steps.update()
            .where(steps.c.run_id == run_id, steps.c.dispatched_at.is_not(None))
            .values(dispatched_at=sa.func.now() - timedelta(seconds=seconds))
        )


def test_recovery_resends_a_run_whose_send_was_lost(mgr, recorder, engine):
    silent = WorkflowManager(mgr.engine, mgr.registry, dispatch=None)
    run_id = silent.start("flaky", {}).run["id"]
    _age(engine, run_id, 60)
    mgr.recovery_grace = 30
    report = mgr.recover()
    assert run_id in report.resent
    assert (run_id, "flaky", "prepare") in recorder.sent
    # a second sweep right after does not send it again (its send time moved)
    recorder.sent.clear()
    assert run_id not in mgr.recover().resent


def _stale_run(engine, name: str, step: str, *, done: str | None = None) -> uuid.UUID:
    """A run whose next step's message went out five minutes ago and never ran."""
    run_id = uuid.uuid4()
    old = sa.func.now() - timedelta(minutes=5)
    with engine.begin() as c:
        c.execute(runs.insert().values(
            id=run_id, name=name, status="running", input={}, created_at=old, updated_at=old,
        ))
        rows = []
        if done:
            rows.append({"run_id": run_id, "position": 0, "name": done, "status": "succeeded",
                         "attempts": 1, "after": [], "dispatched_at": None})
        rows.append({"run_id": run_id, "position": len(rows), "name": step, "status": "pending",
                     "attempts": 0, "after": [done] if done else [], "dispatched_at": old})
        c.execute(steps.insert().values(rows))
    return run_id


def _only_worker_has(engine, tasks: list[str]) -> None:
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM workflow_workers"))
        c.execute(sa.text(
            "INSERT INTO workflow_workers (name, tasks, seen_at) VALUES ('w@test:1', :t, now())"
        ), {"t": tasks})


def test_a_step_no_live_worker_has_waits_visibly_and_is_never_failed(mgr, engine, recorder):
    """Rolling deploy: the live workers lack the step; the run waits, with the reason."""
    run_id = _stale_run(engine, "flaky", "added_in_v2", done="prepare")
    _only_worker_has(engine, ["flaky.prepare", "flaky.charge"])
    try:
        report = mgr.recover()
        assert run_id in report.waiting_for_worker and run_id not in report.resent
        run = mgr.get(run_id)
        assert run["status"] == "running"
        step = run["steps"][1]
        assert step["status"] == "pending"
        assert "flaky.added_in_v2" in step["waiting_for"]
        assert [sent for sent in recorder.sent if sent[0] == run_id] == []
        # the new code arrives: a worker that has the step is seen, and it is sent
        _only_worker_has(engine, ["flaky.prepare", "flaky.added_in_v2"])
        with engine.begin() as c:
            c.execute(steps.update().where(steps.c.run_id == run_id, steps.c.name == "added_in_v2")
                      .values(dispatched_at=sa.func.now() - timedelta(minutes=5)))
        assert run_id in mgr.recover().resent
        assert (run_id, "flaky", "added_in_v2") in recorder.sent
        assert mgr.get(run_id)["steps"][1]["waiting_for"] is None
    finally:
        with engine.begin() as c:
            c.execute(sa.text("DELETE FROM workflow_workers"))


def test_a_run_of_a_workflow_this_process_lacks_is_resent_by_name_not_failed(mgr, engine, recorder):
    run_id = _stale_run(engine, "retired", "only")
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM workflow_workers"))
    report = mgr.recover()
    assert run_id in report.resent
    assert (run_id, "retired", "only") in recorder.sent
    assert mgr.get(run_id)["status"] == "running"


def test_cleanup_deletes_only_finished_runs_past_retention(mgr, engine):
    old = mgr.start("flaky", {}).run["id"]
    recent = mgr.start("flaky", {}).run["id"]
    active = mgr.start("flaky", {}).run["id"]
    mgr.cancel(old)
    mgr.cancel(recent)
    with engine.begin() as c:
        c.execute(runs.update().where(runs.c.id.in_([old, active])).values(
            finished_at=sa.func.now() - timedelta(days=40),
            created_at=sa.func.now() - timedelta(days=40),
        ))
    deleted = mgr.cleanup(30 * 86400, batch=1)
    assert deleted >= 1
    with pytest.raises(RunNotFound):
        mgr.get(old)
    assert mgr.get(recent)["status"] == "cancelled"
    assert mgr.get(active)["status"] == "pending"
    with engine.connect() as c:
        assert c.execute(
            sa.select(sa.func.count()).select_from(steps).where(steps.c.run_id == old)
        ).scalar() == 0
