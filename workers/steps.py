"""The step protocol, written once; every step task runs it.

claim the lease → replay if already succeeded → run with a ``StepContext`` →
checkpoint while holding the lease → on error ask the retry policy.

The chain message is a fast path, never the source of truth: if a step
finishes and its message carried no rest-of-chain although steps remain (a
chain lost on retry, celery#6631), the rest is re-sent from Postgres.

A database outage is nobody's verdict on the step: a claim that cannot reach
Postgres sends the message again later; a checkpoint or a retry record waits
for Postgres (up to ``DB_PATIENCE``) rather than throw away finished work; a
step cut off by the outage is retried even past its attempt budget.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import structlog
from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.engine import checkpoints
from app.engine.checkpoints import ClaimOutcome
from app.engine.db import is_unavailable
from app.engine.definition import StepContext, StepDefinition, Workflow
from app.engine.errors import NonRetryableError, RetryableError, StepNotFound
from app.engine.manager import WorkflowManager, structured_error
from app.engine.registry import Registry
from app.engine.serialize import to_json_value
from app.runtime import get_manager
from app.settings import get_settings
from workers.config import hard_limit, lease_seconds, max_countdown

log = structlog.get_logger("stepwise.step")


T = TypeVar("T")

# How long a step's bookkeeping waits for an unreachable database before it
# gives up (the step then stays leased, and the sweep recovers it).
DB_PATIENCE = 30.0
# Seconds before a step whose claim could not reach the database is tried again.
CLAIM_RETRY_COUNTDOWN = 2.0
# Attempts beyond the policy's budget for a step cut off by a database outage.
OUTAGE_EXTRA_ATTEMPTS = 3


class StepFailed(Exception):
    """Raised after a step's failure is recorded, so Celery and Flower show FAILURE."""


class StepTimedOut(RetryableError):
    code = "step_timed_out"


class DatabaseUnavailable(RetryableError):
    """The step's database connection failed or was cut; its work was rolled back."""

    code = "database_unavailable"


class LeaseLost(Exception):
    """Our lease was taken over (we ran past it); our work is discarded."""


def soft_limit_behind(exc: BaseException) -> bool:
    """Whether the step's soft time limit is behind ``exc``.

    Some client libraries catch every exception around their transport and
    raise their own: stripe's requests client turns ``SoftTimeLimitExceeded``
    into ``APIConnectionError``, which an integration then reports as the
    provider being unreachable. The original stays in the exception chain.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, SoftTimeLimitExceeded):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _stop_chain(task: Task) -> None:
    task.request.chain = None


def _lease_owner(task: Task) -> str:
    # unique per delivery: a duplicated message carries the same task id
    return f"{task.request.hostname}:{os.getpid()}:{task.request.id}:{secrets.token_hex(4)}"


def _write(manager: WorkflowManager, statement: Callable[[Connection], T]) -> T:
    """Run one bookkeeping transaction, waiting out a database outage.

    Every statement written this way is conditional on our lease, so running
    it again after a commit whose answer was lost is harmless.
    """
    deadline = time.monotonic() + DB_PATIENCE
    pause = 0.2
    while True:
        try:
            with manager.engine.begin() as conn:
                return statement(conn)
        except Exception as exc:
            if not is_unavailable(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("database unavailable; waiting to record the step",
                        retry_in=pause, error=str(exc).partition("\n")[0][:200])
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


def _retry_later(task: Task, exc: BaseException) -> NoReturn:
    """Nothing ran and nothing was recorded: the same message, chain and all, later."""
    log.warning("database unavailable; the step will be claimed later",
                retry_in=CLAIM_RETRY_COUNTDOWN, error=str(exc).partition("\n")[0][:200])
    raise task.retry(countdown=CLAIM_RETRY_COUNTDOWN, max_retries=None) from None


def _holder_died_here(task: Task, holder: str | None) -> bool:
    """Whether the lease holder was a process of this worker node that no longer exists."""
    if not holder:
        return False
    node, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if node != task.request.hostname or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def run_step(task: Task, workflow_name: str, position: int, run_id_text: str) -> Any:
    manager = get_manager()
    run_id = uuid.UUID(run_id_text)
    workflow = manager.registry.find(workflow_name)
    step = workflow.step_at(position) if workflow else None
    if workflow is None or step is None:
        return _fail_missing(task, manager, run_id, workflow_name, position)
    timeout = manager.timeout_for(workflow, step)
    owner = _lease_owner(task)
    # one pooled connection for the whole step: one checkout (and pre-ping) per step
    try:
        connection = manager.engine.connect()
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        _retry_later(task, exc)
    with connection as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        # autocommit: the claim and a plain step's checkpoint are single statements,
        # each its own transaction, sent without BEGIN/COMMIT round trips. psycopg2's
        # own flag is toggled (as SQLAlchemy's pre-ping does): going through the
        # isolation_level option instead costs a SET round trip on every change.
        dbapi.autocommit = True
        try:
            return _claim_run_checkpoint(
                task, manager, workflow, step, run_id, owner, timeout, conn
            )
        finally:
            if not dbapi.closed:
                dbapi.autocommit = False


def _claim(
    conn: Connection, manager: WorkflowManager, run_id: uuid.UUID, position: int, owner: str,
    timeout: float,
) -> checkpoints.Claim:
    claim = checkpoints.claim(
        conn, run_id, position, owner, lease_seconds(timeout), manager.recovery_limit
    )
    conn.commit()  # closes SQLAlchemy's autobegun transaction; in autocommit nothing is sent
    return claim


def _claim_run_checkpoint(
    task: Task,
    manager: WorkflowManager,
    workflow: Workflow,
    step: StepDefinition,
    run_id: uuid.UUID,
    owner: str,
    timeout: float,
    conn: Connection,
) -> Any:
    workflow_name, position = workflow.name, step.position
    try:
        claim = _claim(conn, manager, run_id, position, owner, timeout)
        if claim.outcome is ClaimOutcome.BUSY and _holder_died_here(task, claim.lease_owner):
            # a pool child of this very worker died mid-step (SIGKILL, OOM) and the
            # message came back (reject_on_worker_lost): take over without waiting
            # for the lease to run out
            log.warning("lease holder died; taking the step over", holder=claim.lease_owner)
            if manager.take_over_dead_lease(
                run_id, position, step.name, str(claim.lease_owner), claim.attempt
            ):
                claim = _claim(conn, manager, run_id, position, owner, timeout)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        _retry_later(task, exc)
    if claim.outcome is ClaimOutcome.SUCCEEDED:
        log.info("step already succeeded; replaying its output")
        if not claim.next_step_pending:
            _stop_chain(task)
        elif not task.request.chain:
            manager.send(run_id, workflow_name, position + 1)
        return claim.output
    if claim.outcome is not ClaimOutcome.CLAIMED:
        log.info("step not claimed", outcome=claim.outcome.value)
        _stop_chain(task)
        return None

    structlog.contextvars.bind_contextvars(attempt=claim.attempt)
    assert claim.input is not None and claim.outputs is not None
    ctx = StepContext(
        run_id=run_id,
        workflow=workflow_name,
        step=step.name,
        position=position,
        attempt=claim.attempt,
        input=claim.input,
        outputs=claim.outputs,
    )
    last = position == len(workflow.steps) - 1
    where = f"step {step.task_name!r}"
    log.info("step started")
    try:
        if step.transactional:
            # the step's writes and its checkpoint commit together, or not at all
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            dbapi.autocommit = False
            with conn.begin():
                session = Session(bind=conn, join_transaction_mode="rollback_only")
                output = to_json_value(step.function(ctx, session), where=where)
                session.flush()
                status = checkpoints.checkpoint(
                    conn, run_id, position, step.name, owner, output, last=last
                )
                if status is None:
                    raise LeaseLost()
        else:
            output = to_json_value(step.function(ctx), where=where)
            try:
                status = checkpoints.checkpoint(
                    conn, run_id, position, step.name, owner, output, last=last
                )
                conn.commit()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                # the work is done and its output is in hand: wait for the database
                # rather than run the step again
                status = _write(manager, lambda c: checkpoints.checkpoint(
                    c, run_id, position, step.name, owner, output, last=last
                ))
            if status is None:
                raise LeaseLost()
    except LeaseLost:
        log.warning("step lost its lease before its checkpoint; its result is discarded")
        _stop_chain(task)
        return None
    except Exception as exc:  # the step's own failure (or its time limit, maybe wrapped)
        if soft_limit_behind(exc):
            exc = StepTimedOut(f"step {step.name!r} exceeded its time limit of {timeout:g} s")
        elif is_unavailable(exc):  # ... or the database went away under it
            exc = DatabaseUnavailable(
                f"the database connection was lost during step {step.name!r}: "
                f"{str(exc).partition(chr(10))[0][:300]}"
            )
        return _handle_failure(task, manager, workflow, step, run_id, owner, claim.attempt, exc)

    log.info("step succeeded", run_status=status)
    if last or status != "running":
        _stop_chain(task)
    elif not task.request.chain:
        # the rest of the chain is missing (lost on retry or on redelivery): rebuild it
        manager.send(run_id, workflow_name, position + 1)
    return output


def _handle_failure(
    task: Task,
    manager: WorkflowManager,
    workflow: Workflow,
    step: StepDefinition,
    run_id: uuid.UUID,
    owner: str,
    attempt: int,
    exc: BaseException,
) -> Any:
    policy = manager.policy_for(workflow, step)
    retry = policy.should_retry(attempt, exc)
    if isinstance(exc, DatabaseUnavailable):
        # an outage is not the step's failure: it does not end the run
        retry = attempt < policy.max_attempts + OUTAGE_EXTRA_ATTEMPTS
    error = structured_error(exc, step=step.name, attempt=attempt, retryable=retry)
    if retry:
        delay = policy.delay_for(attempt, exc)
        scheduled = _write(manager, lambda conn: checkpoints.schedule_retry(
            conn, run_id, step.position, owner, error, delay
        ))
        if scheduled is None or scheduled[1] not in ("pending", "running"):
            _stop_chain(task)
            return None
        log.warning("step failed; retrying", error=error, delay=round(delay, 3))
        if delay <= max_countdown(get_settings()):
            # same task, same chain: the rest of the workflow rides along
            raise task.retry(countdown=delay, max_retries=None)
        _stop_chain(task)  # a long delay waits in Postgres; the sweep sends it when due
        return None
    _write(manager, lambda conn: checkpoints.fail(conn, run_id, step.position, owner, error))
    log.error("step failed; run failed", error=error)
    _stop_chain(task)
    raise StepFailed(f"{error['type']}: {error['message']}")


def _fail_missing(
    task: Task, manager: WorkflowManager, run_id: uuid.UUID, workflow_name: str, position: int
) -> None:
    exc = StepNotFound(
        f"workflow {workflow_name!r} has no step at position {position} in the deployed code"
    )
    with manager.engine.begin() as conn:
        checkpoints.fail(
            conn, run_id, position, None,
            structured_error(exc, step=f"#{position}", attempt=0, retryable=False),
        )
    _stop_chain(task)
    raise StepFailed(str(exc))


def register_step_tasks(celery_app: Celery, registry: Registry) -> list[str]:
    """One Celery task per step, named ``<workflow>.<step>``, with its time limits."""
    settings = get_settings()
    names = []
    for workflow in registry:
        for step in workflow.steps:
            if step.task_name in celery_app.tasks:
                continue
            timeout = workflow.timeout_for(step, settings.workflow_step_timeout)
            celery_app.task(
                name=step.task_name,
                bind=True,
                soft_time_limit=timeout,
                time_limit=hard_limit(timeout),
                acks_late=True,
                reject_on_worker_lost=True,
                ignore_result=True,
                max_retries=None,
                throws=(StepFailed, NonRetryableError),
                typing=False,
            )(_make_body(workflow.name, step.position))
            names.append(step.task_name)
    return names


def _make_body(workflow_name: str, position: int) -> Any:
    def body(task: Task, run_id: str) -> Any:
        return run_step(task, workflow_name, position, run_id)

    body.__name__ = f"step_{workflow_name}_{position}"
    return body
