"""The step protocol, written once, without Celery: one attempt in, one decision out.

claim the lease → replay if already done → (condition, wait or run) →
checkpoint while holding the lease → on error ask the retry policy.

``execute_step`` returns a ``Decision`` — go on with these steps, stop, run
this same step again in N seconds, or failed — and ``workers.steps`` maps it
onto Celery. So the protocol can be driven in any interleaving by tests with
no worker process at all.

Bookkeeping is never the step's failure: a checkpoint that meets an outage,
a deadlock or a statement timeout is written again (the body is not run
again); an output Postgres cannot store fails the step, clearly and for good.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.engine import admission, transitions
from app.engine.db import is_unavailable
from app.engine.definition import StepContext, StepDefinition, Workflow
from app.engine.errors import (
    NonRetryableError,
    RetryableError,
    structured_error,
)
from app.engine.serialize import to_json_value
from app.engine.states import StepKind
from app.engine.timing import lease_seconds

log = structlog.get_logger("stepwise.step")

T = TypeVar("T")

# How long a step's bookkeeping waits for an unreachable database before it
# gives up (the step then stays leased, and the sweep recovers it).
DB_PATIENCE = 30.0
# Seconds before a step whose claim could not reach the database is tried again.
CLAIM_RETRY_COUNTDOWN = 2.0
# Attempts beyond the policy's budget for a step cut off by a database outage.
OUTAGE_EXTRA_ATTEMPTS = 3
# SQLSTATEs of a statement that may succeed as it is when run again.
_TRANSIENT_STATES = ("40001", "40P01", "55P03", "57014")  # serialization, deadlock, lock/stmt timeout
_BOOKKEEPING_TRIES = 5


class StepTimedOut(RetryableError):
    code = "step_timed_out"


class DatabaseUnavailable(RetryableError):
    """The step's database connection failed or was cut; its work was rolled back."""

    code = "database_unavailable"


class OutputNotStorable(NonRetryableError):
    """Postgres refused the step's output (the body is not run again for it)."""

    code = "output_not_storable"


class Action(Enum):
    CONTINUE = "continue"  # recorded; send ``send``
    STOP = "stop"  # nothing more for this message (not claimed, waiting, lease lost, ...)
    LATER = "later"  # the same message again after ``delay`` seconds
    FAILED = "failed"  # the step failed for good (and maybe its run); send ``send`` (undo steps)


@dataclass(frozen=True)
class Decision:
    action: Action
    send: tuple[str, ...] = ()
    delay: float = 0.0
    reason: str = ""
    error: dict[str, Any] | None = None
    # a retry delay too long for a broker countdown: Postgres holds it, the sweep sends it
    parked: bool = False

    @classmethod
    def stop(cls, reason: str) -> Decision:
        return cls(Action.STOP, reason=reason)


def is_transient(exc: BaseException) -> bool:
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    return code is not None and str(code) in _TRANSIENT_STATES


def write(engine: sa.Engine, statement: Callable[[Connection], T]) -> T:
    """Run one bookkeeping transaction, riding out an outage or a transient error.

    Every statement written this way is conditional on our lease (or
    recognises its own earlier success), so running it again after a commit
    whose answer was lost is harmless.
    """
    deadline = time.monotonic() + DB_PATIENCE
    pause = 0.2
    tries = 0
    while True:
        tries += 1
        try:
            with engine.begin() as conn:
                return statement(conn)
        except sa.exc.DBAPIError as exc:
            outage = is_unavailable(exc)
            if not (outage or (is_transient(exc) and tries < _BOOKKEEPING_TRIES)):
                raise
            if time.monotonic() + pause > deadline:
                raise
            log.warning("bookkeeping failed; writing it again", retry_in=pause,
                        error=str(exc).partition("\n")[0][:200])
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


@dataclass
class Attempt:
    """One delivery of one step's message."""

    workflow: Workflow
    step: StepDefinition
    run_id: uuid.UUID
    owner: str
    timeout: float
    # a lease holder that is known dead (a pool child of this worker), see workers.steps
    holder_died: Callable[[str | None], bool] = lambda holder: False


def execute_step(manager: Any, attempt: Attempt) -> Decision:
    """Claim, run and record one step; the caller maps the decision onto its carrier."""
    try:
        connection = manager.engine.connect()
    except sa.exc.SQLAlchemyError as exc:
        if not is_unavailable(exc):
            raise
        return Decision(Action.LATER, delay=CLAIM_RETRY_COUNTDOWN, reason="database unavailable")
    with connection as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        # autocommit: the claim and a plain step's checkpoint are single round
        # trips, sent without BEGIN/COMMIT. psycopg2's own flag is toggled (as
        # SQLAlchemy's pre-ping does): the isolation_level option costs a SET.
        dbapi.autocommit = True
        try:
            return _claim_and_run(manager, attempt, conn)
        finally:
            if not dbapi.closed:
                dbapi.autocommit = False


def _claim(manager: Any, attempt: Attempt, conn: Connection) -> Any:
    if admission.needs_admission(attempt.workflow, attempt.step):
        return _admit_and_claim(manager, attempt)
    result = transitions.claim(
        conn, attempt.run_id, attempt.step.name, attempt.owner,
        lease_seconds(attempt.timeout), manager.recovery_limit,
    )
    conn.commit()  # closes SQLAlchemy's autobegun transaction; in autocommit nothing is sent
    return result


def _admit_and_claim(manager: Any, attempt: Attempt) -> Any:
    """Admission and claim in one transaction (a refusal rolls both back)."""
    with manager.engine.connect() as conn:
        trans = conn.begin()
        try:
            refused = admission.admit(conn, attempt.workflow, attempt.step, attempt.run_id)
            if refused is None:
                result = transitions.claim(
                    conn, attempt.run_id, attempt.step.name, attempt.owner,
                    lease_seconds(attempt.timeout), manager.recovery_limit,
                )
                trans.commit()
                return result
            trans.rollback()
        except BaseException:
            trans.rollback()
            raise
        with conn.begin():
            transitions.note_throttled(
                conn, attempt.run_id, attempt.step.name, refused.reason, refused.delay
            )
        return refused


def _claim_and_run(manager: Any, attempt: Attempt, conn: Connection) -> Decision:
    try:
        claim = _claim(manager, attempt, conn)
        if (
            isinstance(claim, transitions.NotClaimed)
            and claim.step_status == "running"
            and attempt.holder_died(claim.lease_owner)
        ):
            # a pool child of this very worker died mid-step (SIGKILL, OOM) and the
            # message came back: take over without waiting for the lease to run out
            log.warning("lease holder died; taking the step over", holder=claim.lease_owner)
            if manager.take_over_dead_lease(
                attempt.run_id, attempt.step.name, str(claim.lease_owner), claim.attempt
            ):
                claim = _claim(manager, attempt, conn)
    except sa.exc.SQLAlchemyError as exc:
        if not is_unavailable(exc):
            raise
        return Decision(Action.LATER, delay=CLAIM_RETRY_COUNTDOWN, reason="database unavailable")
    if isinstance(claim, admission.Throttled):
        log.info("step waits for admission", waiting_for=claim.reason, retry_in=round(claim.delay, 3))
        return Decision(Action.LATER, delay=claim.delay, reason=claim.reason)
    if isinstance(claim, transitions.NotClaimed):
        decision = _not_claimed(manager, attempt, claim)
        if decision.action is Action.CONTINUE:
            log.info("step already succeeded; replaying its output", send=list(decision.send))
        else:
            log.info("step not claimed", outcome=decision.reason, step_status=claim.step_status)
        return decision
    return _run_claimed(manager, attempt, conn, claim)


def _not_claimed(manager: Any, attempt: Attempt, claim: transitions.NotClaimed) -> Decision:
    status = claim.step_status
    if status is None:
        return Decision.stop("no such run, or the run has no step of this name")
    if status in ("succeeded", "skipped"):
        # a redelivery after the checkpoint: make sure what it made ready was sent
        ready = manager.ready_after(attempt.run_id, attempt.step.name)
        return Decision(Action.CONTINUE, send=tuple(ready), reason="already done; replayed")
    if claim.run_status not in ("pending", "running"):
        return Decision.stop(f"the run is {claim.run_status}")
    if status == "retrying":
        due_in = max(claim.due_in or 0.0, 0.1)
        if due_in <= manager.max_countdown:
            # the countdown message came early (clocks differ): wait out the rest
            return Decision(Action.LATER, delay=due_in, reason="retry not yet due")
        return Decision.stop("retry not yet due; the sweep sends it when it is")
    return Decision.stop(f"step is {status}")


def _context(attempt: Attempt, claim: transitions.Claimed) -> StepContext:
    return StepContext(
        run_id=attempt.run_id,
        workflow=attempt.workflow.name,
        step=attempt.step.name,
        position=attempt.step.position,
        attempt=claim.attempt,
        input=claim.input,
        outputs=claim.outputs,
        created_at=claim.created_at,
    )


def _run_claimed(
    manager: Any, attempt: Attempt, conn: Connection, claim: transitions.Claimed
) -> Decision:
    step = attempt.step
    ctx = _context(attempt, claim)
    where = f"step {step.task_name!r}"
    structlog.contextvars.bind_contextvars(attempt=claim.attempt)
    log.info("step started")
    try:
        if step.when is not None and not step.when(ctx):
            return _record(manager, attempt, ctx, None, skipped=True)
        if step.kind is StepKind.SLEEP:
            return _sleep(manager, attempt, ctx, claim)
        if step.kind is StepKind.SIGNAL:
            return _wait_for_signal(manager, attempt, ctx, claim)
        assert step.function is not None
        if step.transactional:
            return _run_transactional(manager, attempt, conn, ctx, where)
        output = _storable(step.function(ctx), where)
    except _Recorded as recorded:
        return recorded.decision
    except Exception as exc:  # the step's own failure (or its time limit, maybe wrapped)
        return _handle_failure(manager, attempt, claim.attempt, _explain(exc, attempt))
    return _record(manager, attempt, ctx, output, fast=conn)


class _Recorded(Exception):
    """Carries a decision out of a transaction that has already decided."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision


def _storable(value: Any, where: str) -> Any:
    """The JSON form of an output, refusing what JSONB cannot hold (NUL characters)."""
    return to_json_value(value, where=where, for_postgres=True)


def _result(attempt: Attempt, ctx: StepContext, output: Any) -> dict[str, Any] | None:
    """The workflow's own output fields, in case this step finishes the run."""
    if attempt.workflow.result is None or attempt.step.kind is StepKind.COMPENSATION:
        return None
    outputs = {**ctx.outputs, attempt.step.name: output}
    full = StepContext(**{**ctx.__dict__, "outputs": outputs})
    result: dict[str, Any] = _storable(
        dict(attempt.workflow.result(full)), f"workflow {attempt.workflow.name!r} result"
    )
    return result


def _record(
    manager: Any, attempt: Attempt, ctx: StepContext, output: Any, *, skipped: bool = False,
    conn: Connection | None = None, fast: Connection | None = None,
) -> Decision:
    """Checkpoint a success (or skip); written again on outages, never re-running the body.

    ``conn``: inside the caller's transaction (a transactional step). ``fast``:
    the step's autocommit connection, where the checkpoint is one round trip.
    """
    try:
        result = _result(attempt, ctx, output)
    except Exception as exc:
        return _handle_failure(manager, attempt, ctx.attempt, exc)

    def statement(c: Connection) -> transitions.Advance | None:
        if attempt.step.kind is StepKind.COMPENSATION:
            return transitions.compensated(c, attempt.run_id, attempt.step.name, attempt.owner, output)
        return transitions.succeed(
            c, attempt.run_id, attempt.step.name, attempt.owner, output,
            skipped=skipped, result=result,
        )

    try:
        if conn is not None:
            advance = statement(conn)
        elif fast is not None:
            try:
                advance = statement(fast)
                fast.commit()
            except sa.exc.DBAPIError as exc:
                if not (is_unavailable(exc) or is_transient(exc)):
                    raise
                # the work is done and its output is in hand: write the checkpoint
                # again (it recognises its own success if the first one committed)
                advance = write(manager.engine, statement)
        else:
            advance = write(manager.engine, statement)
    except sa.exc.DataError as exc:  # Postgres refused the value itself
        error = OutputNotStorable(
            f"step {attempt.step.name!r} returned an output Postgres cannot store: "
            f"{str(exc.orig).partition(chr(10))[0][:300]}"
        )
        if conn is not None:
            raise
        return _handle_failure(manager, attempt, ctx.attempt, error)
    if advance is None:
        log.warning("step lost its lease before its checkpoint; its result is discarded")
        return Decision.stop("lease lost")
    log.info("step skipped" if skipped else "step succeeded", run_status=advance.run_status)
    return Decision(Action.CONTINUE, send=tuple(advance.send), reason=advance.run_status)


def _run_transactional(
    manager: Any, attempt: Attempt, conn: Connection, ctx: StepContext, where: str
) -> Decision:
    """The step's writes and its checkpoint commit together, or not at all.

    A deadlock or timeout rolls both back, so running the body again is safe:
    that is the bookkeeping retry of a transactional step.
    """
    step = attempt.step
    assert step.function is not None
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.autocommit = False
    tries = 0
    while True:
        tries += 1
        try:
            with conn.begin():
                session = Session(bind=conn, join_transaction_mode="rollback_only")
                output = _storable(step.function(ctx, session), where)
                session.flush()
                try:
                    decision = _record(manager, attempt, ctx, output, conn=conn)
                except sa.exc.DataError as exc:
                    raise OutputNotStorable(
                        f"step {step.name!r} returned an output Postgres cannot store: "
                        f"{str(exc.orig).partition(chr(10))[0][:300]}"
                    ) from None
                if decision.action is not Action.CONTINUE:
                    raise _Recorded(decision)  # lease lost: roll the step's writes back
            return decision
        except sa.exc.DBAPIError as exc:
            if is_transient(exc) and tries < _BOOKKEEPING_TRIES:
                log.warning("transactional step's transaction failed; running it again",
                            pgcode=getattr(exc.orig, "pgcode", "?"))
                time.sleep(0.05 * tries)
                continue
            raise


def _seconds_until(value: Any, now: datetime) -> tuple[float, datetime | None]:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (moment - now).total_seconds(), moment
    return float(value), None


def _duration(step: StepDefinition, ctx: StepContext) -> tuple[float, datetime | None]:
    spec = step.duration
    value = spec(ctx) if callable(spec) else spec
    return _seconds_until(value, datetime.now(UTC))


def _sleep(
    manager: Any, attempt: Attempt, ctx: StepContext, claim: transitions.Claimed
) -> Decision:
    if claim.wake_at is not None and claim.wake_due:
        return _record(manager, attempt, ctx, {"slept_until": claim.wake_at.isoformat()})
    if claim.wake_at is None:
        seconds, absolute = _duration(attempt.step, ctx)
        if seconds <= 0:
            return _record(manager, attempt, ctx, {"slept_until": datetime.now(UTC).isoformat()})
    else:
        seconds, absolute = 0.0, claim.wake_at
    wake_at = write(manager.engine, lambda c: transitions.wait(
        c, attempt.run_id, attempt.step.name, attempt.owner, seconds=seconds, absolute=absolute
    ))
    log.info("step sleeping", wake_at=str(wake_at))
    return Decision.stop(f"sleeping until {wake_at}")


def _wait_for_signal(
    manager: Any, attempt: Attempt, ctx: StepContext, claim: transitions.Claimed
) -> Decision:
    """Consume the signal if it is there, time out if due, else wait — under the run lock."""
    step = attempt.step
    assert step.signal is not None
    seconds, absolute = (0.0, claim.wake_at)
    if claim.wake_at is None:
        seconds, absolute = _duration(step, ctx) if step.duration is not None else (10 * 365 * 86400.0, None)

    def decide(c: Connection) -> tuple[str, Any]:
        c.execute(sa.text(transitions.LOCK_RUN).bindparams(sa.bindparam("run_id", type_=sa.Uuid)),
                  {"run_id": attempt.run_id})
        found, payload = transitions.consume_signal(c, attempt.run_id, step.name, step.signal or "")
        if found:
            return "signal", payload
        if claim.wake_at is not None and claim.wake_due:
            return "timeout", None
        wake_at = transitions.wait(
            c, attempt.run_id, step.name, attempt.owner, seconds=seconds, absolute=absolute
        )
        return "waiting", wake_at

    outcome, value = write(manager.engine, decide)
    if outcome == "signal":
        return _record(manager, attempt, ctx, value if value is not None else {})
    if outcome == "timeout":
        return _record(manager, attempt, ctx, {"timed_out": True})
    log.info("step waiting for a signal", signal=step.signal, wake_at=str(value))
    return Decision.stop(f"waiting for signal {step.signal!r}")


def _explain(exc: BaseException, attempt: Attempt) -> BaseException:
    if soft_limit_behind(exc):
        return StepTimedOut(
            f"step {attempt.step.name!r} exceeded its time limit of {attempt.timeout:g} s"
        )
    if is_unavailable(exc):  # the database went away under the step
        return DatabaseUnavailable(
            f"the database connection was lost during step {attempt.step.name!r}: "
            f"{str(exc).partition(chr(10))[0][:300]}"
        )
    return exc


def soft_limit_behind(exc: BaseException) -> bool:
    """Whether the step's soft time limit is behind ``exc``.

    Some client libraries catch every exception around their transport and
    raise their own: stripe's requests client turns ``SoftTimeLimitExceeded``
    into ``APIConnectionError``. The original stays in the exception chain.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if type(current).__name__ == "SoftTimeLimitExceeded":
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _handle_failure(manager: Any, attempt: Attempt, number: int, exc: BaseException) -> Decision:
    step = attempt.step
    policy = manager.policy_for(attempt.workflow, step)
    retry = policy.should_retry(number, exc)
    if isinstance(exc, DatabaseUnavailable):
        # an outage is not the step's failure: it does not end the run
        retry = number < policy.max_attempts + OUTAGE_EXTRA_ATTEMPTS
    error = structured_error(exc, step=step.name, attempt=number, retryable=retry)
    if retry:
        delay = policy.delay_for(number, exc)
        parked = delay > manager.max_countdown
        scheduled = write(manager.engine, lambda c: transitions.schedule_retry(
            c, attempt.run_id, step.name, attempt.owner, error, delay, parked=parked
        ))
        if scheduled is None or scheduled[1] not in ("pending", "running"):
            return Decision.stop("lease lost or run finished while recording the retry")
        log.warning("step failed; retrying", error=error, delay=round(delay, 3))
        return Decision(Action.LATER, delay=delay, reason="retrying", error=error, parked=parked)
    advance = write(manager.engine, lambda c: transitions.fail(
        c, attempt.run_id, step.name, attempt.owner, error
    ))
    log.error("step failed; run failed" if advance and advance.run_status == "failed"
              else "step failed", error=error)
    return Decision(
        Action.FAILED, send=tuple(advance.send) if advance else (), error=error,
        reason=advance.run_status if advance else "lease lost",
    )
