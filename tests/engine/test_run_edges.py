"""Issue 12's edges, each reproduced against real Postgres with the protocol driven
in-process: runs that never ended, a deploy that ran the wrong step, bookkeeping
taken for the step's failure. Each test is named after its scenario."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from marshmallow import Schema

from app.engine import NonRetryableError, RetryableError, StepContext, Workflow, transitions
from app.engine.errors import NothingToRetry
from app.engine.models import runs, steps
from app.engine.protocol import Action
from app.engine.retry import RetryPolicy
from tests.support.driver import Driver

calls: Counter[str] = Counter()


class Empty(Schema):
    pass


def _name() -> str:
    return f"edge_{uuid.uuid4().hex[:8]}"


def two_steps(last_body: Any = None) -> Workflow:
    wf = Workflow(_name(), input_schema=Empty, register=False)

    @wf.step()
    def first(ctx: StepContext) -> dict[str, Any]:
        calls[f"{ctx.run_id}:first"] += 1
        return {"step": "first"}

    @wf.step()
    def last(ctx: StepContext) -> dict[str, Any]:
        calls[f"{ctx.run_id}:last"] += 1
        if last_body is not None:
            last_body(ctx)
        return {"step": "last"}

    return wf


@pytest.fixture
def engine_(engine: sa.Engine) -> sa.Engine:
    return engine


# -- 1. cancel during the last step, then retry ---------------------------------


def test_cancel_during_the_last_step_then_retry_answers_409_nothing_to_retry(engine):
    holder: dict[str, Driver] = {}
    wf = two_steps(lambda ctx: holder["d"].manager.cancel(ctx.run_id))
    d = holder["d"] = Driver(engine, wf)
    run_id = d.start(wf.name)
    d.drain(run_id)
    run = d.manager.get(run_id)
    assert run["status"] == "cancelled"
    assert [s["status"] for s in run["steps"]] == ["succeeded", "succeeded"]
    with pytest.raises(NothingToRetry, match="nothing to retry"):
        d.manager.retry(run_id)
    assert d.manager.get(run_id)["status"] == "cancelled"


def test_retry_while_the_last_step_still_runs_ends_the_run_when_it_finishes(engine):
    holder: dict[str, Driver] = {}

    def cancel_then_retry(ctx: StepContext) -> None:
        holder["d"].manager.cancel(ctx.run_id)
        assert holder["d"].manager.retry(ctx.run_id)["status"] == "pending"

    wf = two_steps(cancel_then_retry)
    d = holder["d"] = Driver(engine, wf)
    run_id = d.start(wf.name)
    d.drain(run_id)
    run = d.manager.get(run_id)
    assert run["status"] == "succeeded"
    assert run["output"] == {"first": {"step": "first"}, "last": {"step": "last"}}
    assert calls[f"{run_id}:last"] == 1


# -- 2. stranded runs are finished by the sweep and cannot starve it --------------


def _stranded(engine: sa.Engine, name: str) -> uuid.UUID:
    """An active run with every step succeeded: what round 1 could leave behind."""
    run_id = uuid.uuid4()
    old = sa.func.now() - timedelta(minutes=10)
    with engine.begin() as c:
        c.execute(runs.insert().values(
            id=run_id, name=name, status="pending", input={}, created_at=old, updated_at=old,
        ))
        c.execute(steps.insert().values([
            {"run_id": run_id, "position": i, "name": n, "status": "succeeded", "attempts": 1,
             "output": {"step": n}, "after": [] if i == 0 else ["first"]}
            for i, n in enumerate(["first", "last"])
        ]))
    return run_id


def test_the_sweep_finishes_active_runs_whose_steps_are_all_done_in_batches(engine):
    wf = two_steps()
    d = Driver(engine, wf)
    stranded = [_stranded(engine, wf.name) for _ in range(5)]
    d.manager.recover(batch=2)
    d.manager.recover(batch=2)
    d.manager.recover(batch=2)
    for run_id in stranded:
        run = d.manager.get(run_id)
        assert run["status"] == "succeeded", run_id
        assert run["output"] == {"first": {"step": "first"}, "last": {"step": "last"}}


def test_the_stranded_check_examines_a_slice_per_sweep_and_comes_round_to_every_run(
    engine, monkeypatch
):
    from app.engine import recovery

    monkeypatch.setattr(recovery, "STRANDED_SLICE", 3)
    wf = two_steps()
    d = Driver(engine, wf)
    stranded = [_stranded(engine, wf.name) for _ in range(5)]
    with engine.connect() as c:
        active = int(c.execute(sa.text(
            "SELECT count(*) FROM workflow_runs WHERE status IN ('pending', 'running') "
            "AND updated_at < now()")).scalar_one())
    sweeps = 0
    while any(d.manager.get(r)["status"] != "succeeded" for r in stranded):
        d.manager.recover()
        sweeps += 1
        # each sweep looks at 3 runs, so one pass over every active run is bounded
        assert sweeps <= active // 3 + 2, (sweeps, active)
    assert sweeps >= 2  # five stranded runs do not fit one slice of three


# -- 4. early countdowns and lost commit replies cost a moment, not a sweep -------


def test_an_early_countdown_waits_out_the_rest_instead_of_stopping(engine):
    wf = two_steps()
    d = Driver(engine, wf)
    run_id = d.start(wf.name)
    with engine.begin() as c:
        c.execute(steps.update().where(steps.c.run_id == run_id, steps.c.name == "first").values(
            status="retrying", next_attempt_at=sa.func.now() + timedelta(seconds=5)))
    decision = d.deliver(run_id, "first")
    assert decision.action is Action.LATER
    assert 3.5 < decision.delay <= 5.0


def test_a_checkpoint_whose_commit_reply_was_lost_finds_its_successors_again(engine):
    wf = two_steps()
    d = Driver(engine, wf)
    run_id = d.start(wf.name)
    attempt = d.attempt(run_id, "first")
    with engine.connect() as c:
        claimed = transitions.claim(c, run_id, "first", attempt.owner, 30, 3)
        c.commit()
    assert isinstance(claimed, transitions.Claimed)
    with engine.begin() as c:
        first = transitions.succeed(c, run_id, "first", attempt.owner, {"step": "first"})
    # the reply was lost: the same checkpoint is written again
    with engine.begin() as c:
        again = transitions.succeed(c, run_id, "first", attempt.owner, {"step": "first"})
    assert first is not None and again is not None
    assert first.send == again.send == ["last"]
    # a stranger's checkpoint is still refused
    with engine.begin() as c:
        assert transitions.succeed(c, run_id, "first", "someone-else", {"step": "x"}) is None


# -- 5. a cancel racing a claim ----------------------------------------------------


def test_a_claim_waiting_on_a_cancel_leaves_the_step_unleased(engine):
    wf = two_steps()
    d = Driver(engine, wf)
    run_id = d.start(wf.name)
    result: dict[str, Any] = {}
    with engine.connect() as canceller:
        tx = canceller.begin()
        assert transitions.cancel(canceller, run_id) is not None  # holds the run row

        def claim() -> None:
            with engine.connect() as c:
                result["claim"] = transitions.claim(c, run_id, "first", "racer", 30, 3)
                c.commit()

        thread = threading.Thread(target=claim)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the claim should wait for the run row"
        tx.commit()
        thread.join(10)
    assert isinstance(result["claim"], transitions.NotClaimed)
    first = d.step(run_id, "first")
    assert (first["status"], first["attempts"]) == ("pending", 0)
    # so a retry right away is not dropped: the step is claimable at once
    d.manager.retry(run_id)
    d.drain(run_id)
    assert d.manager.get(run_id)["status"] == "succeeded"


# -- 6. a deploy never runs one step's code under another step's row --------------


def test_a_run_started_on_v1_runs_its_own_graph_after_v2_is_deployed(engine):
    name = _name()
    v1 = Workflow(name, input_schema=Empty, register=False)
    for step in ("a", "b"):
        v1.step(name=step)(lambda ctx: {"ran": ctx.step})
    v1_driver = Driver(engine, v1)
    run_id = v1_driver.start(name)

    ran: list[str] = []
    v2 = Workflow(name, input_schema=Empty, register=False)
    for step in ("a", "a2", "b"):
        v2.step(name=step)(lambda ctx, step=step: ran.append(step) or {"ran": step})
    v2_driver = Driver(engine, v2)
    v2_driver.sent.append((run_id, "a"))  # the sweep re-sent the run to v2's workers
    v2_driver.drain(run_id)
    run = v2_driver.manager.get(run_id)
    assert run["status"] == "succeeded"
    assert ran == ["a", "b"]  # a2 is not part of this run
    assert {s["name"]: s["output"] for s in run["steps"]} == {
        "a": {"ran": "a"}, "b": {"ran": "b"}
    }
    # and a message for a2 (a v2 chain) finds no such step in the run: nothing runs
    assert v2_driver.deliver(run_id, "a2").action is Action.STOP


# -- 8. bookkeeping is not the step's failure -------------------------------------


def test_an_output_postgres_cannot_store_fails_once_without_rerunning_the_body(engine):
    wf = Workflow(_name(), input_schema=Empty, register=False)

    @wf.step()
    def send_mail(ctx: StepContext) -> dict[str, Any]:
        calls[f"{ctx.run_id}:send_mail"] += 1
        return {"subject": "hi\u0000there"}

    d = Driver(engine, wf)
    run_id = d.start(wf.name)
    d.drain(run_id)
    run = d.manager.get(run_id)
    assert run["status"] == "failed"
    assert run["error"]["type"] == "OutputNotSerializable"
    assert "NUL" in run["error"]["message"] and run["error"]["retryable"] is False
    assert calls[f"{run_id}:send_mail"] == 1


def test_a_connection_cut_at_the_checkpoint_writes_it_again_not_the_body(engine):
    wf = Workflow(_name(), input_schema=Empty, register=False)

    @wf.step()
    def charge(ctx: StepContext) -> dict[str, Any]:
        calls[f"{ctx.run_id}:charge"] += 1
        with engine.connect() as c:  # every idle connection of the test database is cut
            c.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
            ))
        return {"charged": True}

    d = Driver(engine, wf)
    run_id = d.start(wf.name)
    d.drain(run_id)
    run = d.manager.get(run_id)
    assert run["status"] == "succeeded", run["error"]
    assert calls[f"{run_id}:charge"] == 1
    assert d.step(run_id, "charge")["attempts"] == 1


# -- 9. a step's non_retryable adds to the workflow's own list --------------------


class CardDeclined(Exception):
    pass


class LedgerClosed(Exception):
    pass


def test_a_steps_non_retryable_adds_to_the_workflows_list():
    wf = Workflow(
        _name(), input_schema=Empty, register=False,
        retry=RetryPolicy(non_retryable=(LedgerClosed,)),
    )

    @wf.step(non_retryable=(CardDeclined,))
    def charge(ctx: StepContext) -> None: ...

    policy = wf.policy_for(wf.steps[0], RetryPolicy())
    assert not policy.is_retryable(CardDeclined())
    assert not policy.is_retryable(LedgerClosed())
    assert policy.is_retryable(ConnectionError())


# -- history: every attempt is kept ------------------------------------------------


def test_a_step_that_failed_twice_then_succeeded_shows_three_attempts(engine):
    wf = Workflow(_name(), input_schema=Empty, register=False)

    @wf.step()
    def call_api(ctx: StepContext) -> dict[str, Any]:
        if ctx.attempt < 3:
            raise RetryableError(f"503 on attempt {ctx.attempt}")
        return {"ok": True}

    d = Driver(engine, wf)
    run_id = d.start(wf.name)
    d.drain(run_id)
    history = d.step(run_id, "call_api")["history"]
    assert [(h["attempt"], h["status"]) for h in history] == [
        (1, "failed"), (2, "failed"), (3, "succeeded")
    ]
    assert history[0]["error"]["message"] == "503 on attempt 1"
    assert history[2]["error"] is None
    assert all(h["started_at"] <= h["finished_at"] for h in history)


def test_a_non_retryable_failure_fails_the_run_after_one_attempt(engine):
    wf = Workflow(_name(), input_schema=Empty, register=False)

    @wf.step()
    def validate(ctx: StepContext) -> None:
        raise NonRetryableError("bad data")

    d = Driver(engine, wf)
    run_id = d.start(wf.name)
    decisions = [d.deliver(run_id, "validate")]
    assert decisions[0].action is Action.FAILED
    run = d.manager.get(run_id)
    assert run["status"] == "failed" and run["error"]["message"] == "bad data"


def test_a_claim_that_takes_over_an_expired_lease_records_the_lost_attempt(engine):
    """RabbitMQ redelivers a dead worker's message at once: the next claim, not the
    sweep, finds the lease expired, and the lost attempt must still be in history."""
    wf = two_steps()
    d = Driver(engine, wf)
    run_id = d.start(wf.name)
    with engine.begin() as c:
        c.execute(steps.update().where(steps.c.run_id == run_id, steps.c.name == "first").values(
            status="running", attempts=1, started_at=sa.func.now() - timedelta(seconds=30),
            lease_owner="gone:1:x", lease_expires_at=sa.func.now() - timedelta(seconds=1)))
    d.deliver(run_id, "first")
    first = d.step(run_id, "first")
    assert first["status"] == "succeeded" and first["attempts"] == 2
    lost, done = first["history"]
    assert (lost["attempt"], lost["status"], lost["error"]["type"]) == (1, "failed", "WorkerLost")
    assert (done["attempt"], done["status"]) == (2, "succeeded")
    assert d.manager.get(run_id)["recovery_count"] == 1


def test_four_sweeps_at_once_split_the_work_and_resend_each_lost_run_once(engine):
    wf = two_steps()
    d = Driver(engine, wf)
    d.manager.recovery_grace = 30  # as deployed: a message just sent is not stale
    lost = [d.start(wf.name) for _ in range(12)]
    d.sent.clear()  # their messages are lost
    with engine.begin() as c:
        c.execute(steps.update().where(steps.c.run_id.in_(lost), steps.c.name == "first")
                  .values(dispatched_at=sa.func.now() - timedelta(minutes=5)))
    tasks = [s.task_name for s in wf.steps]
    d.manager.heartbeat(d.name, tasks)  # the sweeps' live worker for these steps
    barrier = threading.Barrier(4)
    reports: list[Any] = []

    def sweep() -> None:
        barrier.wait()
        reports.append(d.manager.recover())

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        d.manager.forget_worker(d.name)
    resent = Counter(r for report in reports for r in report.resent if r in lost)
    assert resent == Counter({r: 1 for r in lost})  # every lost run, and each once
    assert Counter(rid for rid, _ in d.sent if rid in lost) == Counter({r: 1 for r in lost})
