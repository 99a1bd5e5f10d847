"""Every status write of runs and steps, each one conditional statement.

This module is the only place that changes a ``status`` column. Each write
is a compare-and-set whose guard (``WHERE status IN (...)``) is rendered from
the transition tables in ``states``, so the tables tests read are the guards
Postgres applies.

Lock order, everywhere: the run row first (``FOR NO KEY UPDATE``), then its
step rows. Claims, checkpoints, cancels, retries, signals and the sweep all
follow it, so they serialise per run instead of deadlocking, and a join is
decided exactly once: the last predecessor's checkpoint runs after the
others committed, sees them done, and marks the join ready in its own
transaction. The lock is the first statement of the same query string as
the write, so it costs no extra round trip.

Completion is decided from the run's own rows (its graph, its statuses),
never from the deployed code: a run keeps the graph it started with.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from app.engine.prepared import execute as execute_prepared
from app.engine.prepared import prepared
from app.engine.states import (
    ACTIVE_RUN_STATUSES,
    DONE_STEP_STATUSES,
    RunStatus,
    StepStatus,
    sql_list,
    step_sources,
)

# A retry or wake-up message that arrives a little early (clocks differ) may run.
EARLY_SLACK_SECONDS = 1.0

ACTIVE = sql_list(ACTIVE_RUN_STATUSES)
DONE = sql_list(DONE_STEP_STATUSES)
CLAIMABLE = sql_list(step_sources(StepStatus.RUNNING))
FAILABLE = sql_list(step_sources(StepStatus.FAILED))
WAKEABLE = sql_list(step_sources(StepStatus.PENDING) & frozenset({StepStatus.WAITING}))
RETRY_RESETTABLE = sql_list(
    step_sources(StepStatus.PENDING) - frozenset({StepStatus.WAITING})
)

LOCK_RUN = "SELECT 1 FROM workflow_runs WHERE id = :run_id FOR NO KEY UPDATE;"


def _history(status: str, error: str = "NULL") -> str:
    """The attempt that just ended, appended to the step's history."""
    return (
        "history = s.history || jsonb_build_array(jsonb_build_object("
        f"'attempt', s.attempts, 'status', {status}, 'error', {error}, "
        "'started_at', s.started_at, 'finished_at', now()))"
    )


def _params(statement: str, **types: Any) -> sa.TextClause:
    binds = [sa.bindparam("run_id", type_=sa.Uuid)]
    binds += [sa.bindparam(name, type_=t) for name, t in types.items()]
    return sa.text(statement).bindparams(*binds)


# -- claim ---------------------------------------------------------------------

# The claim is only a lease: losing it in a crash leaves the step claimable, so
# its commit need not wait for the WAL flush. A step woken from a wait keeps its
# attempt number and start time (the wait was one attempt).
_CLAIM_SQL = f"""
    WITH claimed AS (
        UPDATE workflow_steps AS s
        SET status = 'running',
            attempts = s.attempts + CASE WHEN old.status = 'pending' AND old.wake_at IS NOT NULL
                                         THEN 0 ELSE 1 END,
            started_at = CASE WHEN old.status = 'pending' AND old.wake_at IS NOT NULL
                              THEN coalesce(s.started_at, now()) ELSE now() END,
            lease_owner = :owner,
            lease_expires_at = now() + make_interval(secs => :lease),
            finished_at = NULL,
            next_attempt_at = NULL,
            waiting_for = NULL,
            -- taking over an expired lease ends the lost attempt, as the sweep would
            history = CASE WHEN old.status = 'running' THEN s.history || jsonb_build_array(
                jsonb_build_object(
                    'attempt', old.attempts, 'status', 'failed',
                    'error', jsonb_build_object(
                        'type', 'WorkerLost',
                        'message', 'the step''s lease expired before it finished',
                        'step', s.name, 'attempt', old.attempts, 'retryable', true),
                    'started_at', old.started_at, 'finished_at', now()))
                ELSE s.history END
        FROM workflow_steps AS old, workflow_runs AS r
        WHERE s.run_id = :run_id AND s.name = :step
          AND old.run_id = s.run_id AND old.name = s.name
          AND r.id = s.run_id AND r.status IN ({ACTIVE})
          AND s.status IN ({CLAIMABLE})
          AND (
                s.status = 'pending'
             OR (s.status = 'retrying'
                 AND (s.next_attempt_at IS NULL
                      OR s.next_attempt_at <= now() + make_interval(secs => :slack)))
             OR (s.status = 'running' AND s.lease_expires_at < now()
                 AND r.recovery_count < :limit)
          )
        RETURNING s.attempts, s.kind, s.wake_at, s.wake_at <= now() AS wake_due,
                  old.status = 'running' AS took_over, r.input, r.created_at
    ), run AS (
        UPDATE workflow_runs AS r
        SET status = 'running',
            started_at = coalesce(r.started_at, now()),
            updated_at = now(),
            -- taking over an expired lease recovers a lost worker: it counts
            recovery_count = r.recovery_count + CASE WHEN claimed.took_over THEN 1 ELSE 0 END
        FROM claimed
        WHERE r.id = :run_id AND (r.status = 'pending' OR claimed.took_over)
    )
    SELECT c.attempts, c.kind, c.wake_at, c.wake_due, c.input, c.created_at,
           (SELECT coalesce(jsonb_object_agg(p.name, p.output), '{{}}'::jsonb)
              FROM workflow_steps p
             WHERE p.run_id = :run_id AND p.status = 'succeeded') AS outputs
    FROM claimed c
"""
# prepared once per connection (app.engine.prepared): planning the claim cost
# more than running it
_LOCK_PREPARED = prepared("stepwise_lock_run", LOCK_RUN.rstrip(";"), [("run_id", "uuid")])
_CLAIM_PREPARED = prepared("stepwise_claim", _CLAIM_SQL, [
    ("run_id", "uuid"), ("step", "text"), ("owner", "text"), ("lease", "float8"),
    ("slack", "float8"), ("limit", "int"),
])

_INSPECT = _params(
    """
    SELECT s.status AS step_status, s.output, s.lease_owner, s.attempts, s.next_attempt_at,
           extract(epoch FROM s.next_attempt_at - now()) AS due_in,
           r.status AS run_status, r.recovery_count
    FROM workflow_steps s JOIN workflow_runs r ON r.id = s.run_id
    WHERE s.run_id = :run_id AND s.name = :step
    """
)


@dataclass(frozen=True)
class Claimed:
    attempt: int
    kind: str
    input: dict[str, Any]
    outputs: dict[str, Any]
    created_at: datetime
    wake_at: datetime | None
    wake_due: bool


@dataclass(frozen=True)
class NotClaimed:
    """Why a claim did not take the lease, as the step and run stand now."""

    step_status: str | None  # None: no such run or step
    run_status: str | None = None
    output: Any = None
    lease_owner: str | None = None
    attempt: int = 0
    due_in: float | None = None  # a retry not yet due: seconds until it is


def claim(
    conn: Connection,
    run_id: uuid.UUID,
    step: str,
    owner: str,
    lease_seconds: float,
    recovery_limit: int,
) -> Claimed | NotClaimed:
    """Take the step's lease, or say why not (one round trip when it is taken).

    Taking over an expired lease counts as a recovery, and is refused once the
    run is at its recovery limit (the sweep then dead-letters it).
    """
    row = execute_prepared(
        conn,
        [_LOCK_PREPARED, _CLAIM_PREPARED],
        {
            "run_id": run_id,
            "step": step,
            "owner": owner,
            "lease": lease_seconds,
            "slack": EARLY_SLACK_SECONDS,
            "limit": recovery_limit,
        },
        prefix="SET LOCAL synchronous_commit = off; ",
    ).one_or_none()
    if row is not None:
        return Claimed(
            row.attempts, row.kind, row.input, row.outputs, row.created_at, row.wake_at,
            bool(row.wake_due),
        )
    info = conn.execute(_INSPECT, {"run_id": run_id, "step": step}).one_or_none()
    if info is None:
        return NotClaimed(None)
    return NotClaimed(
        info.step_status,
        info.run_status,
        info.output,
        info.lease_owner,
        info.attempts,
        None if info.due_in is None else float(info.due_in),
    )


# -- the end of an attempt -------------------------------------------------------

# Steps that become ready when step :step is done: pending forward steps that
# name it, all of whose other predecessors are done. Evaluated under the run lock.
_READY = f"""
    UPDATE workflow_steps AS n
    SET dispatched_at = now(), resends = 0
    FROM done, workflow_runs AS r
    WHERE n.run_id = :run_id AND r.id = :run_id
      AND r.status IN ({ACTIVE}) AND r.error IS NULL
      AND n.status = 'pending' AND n.kind <> 'compensation'
      AND :step = ANY(n.after)
      AND NOT EXISTS (
          SELECT 1 FROM workflow_steps q
          WHERE q.run_id = :run_id AND q.name = ANY(n.after) AND q.name <> :step
            AND q.status NOT IN ({DONE}))
    RETURNING n.name
"""

# The run succeeds when no forward step is left undone (this one counts as done).
_FINISH_RUN = f"""
    UPDATE workflow_runs AS r
    SET updated_at = now(), status = 'succeeded', finished_at = now(),
        output = (SELECT coalesce(jsonb_object_agg(p.name, p.output), '{{}}'::jsonb)
                    FROM workflow_steps p
                   WHERE p.run_id = :run_id AND p.name <> :step AND p.status = 'succeeded'
                     AND p.kind <> 'compensation')
                 || CASE WHEN :final = 'succeeded'
                         THEN jsonb_build_object(CAST(:step AS text), CAST(:output AS jsonb))
                         ELSE '{{}}'::jsonb END
                 || coalesce(CAST(:result AS jsonb), '{{}}'::jsonb)
    FROM done
    WHERE r.id = :run_id AND r.status IN ({ACTIVE}) AND r.error IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM workflow_steps q
          WHERE q.run_id = :run_id AND q.kind <> 'compensation' AND q.name <> :step
            AND q.status NOT IN ({DONE}))
    RETURNING r.status
"""

# A step's success (or skip). Also recognises its own earlier success: a
# checkpoint whose commit reply was lost is sent again and must find the same
# successors, not lose them.
_SUCCEED_SQL = f"""
    WITH updated AS (
        UPDATE workflow_steps AS s
        SET status = :final, output = CAST(:output AS jsonb), error = NULL, finished_at = now(),
            lease_expires_at = NULL, next_attempt_at = NULL, wake_at = NULL, waiting_for = NULL,
            {_history(":final")}
        WHERE s.run_id = :run_id AND s.name = :step
          AND s.status = 'running' AND s.lease_owner = :owner
        RETURNING s.name
    ), done AS (
        SELECT name FROM updated
        UNION ALL
        SELECT name FROM workflow_steps
         WHERE run_id = :run_id AND name = :step AND status = :final AND lease_owner = :owner
    ), ready AS ({_READY}),
    finished AS ({_FINISH_RUN})
    SELECT (SELECT count(*) FROM done) AS done,
           (SELECT count(*) FROM updated) AS first_time,
           coalesce((SELECT status FROM finished), r.status) AS run_status,
           coalesce((SELECT array_agg(name) FROM ready), '{{}}') AS ready
    FROM workflow_runs r WHERE r.id = :run_id
"""
_SUCCEED_PREPARED = prepared("stepwise_succeed", _SUCCEED_SQL, [
    ("run_id", "uuid"), ("step", "text"), ("owner", "text"), ("output", "text"),
    ("final", "text"), ("result", "text"),
])


@dataclass(frozen=True)
class Advance:
    """What a recorded outcome lets happen next: the run's status and steps to send."""

    run_status: str
    send: list[str] = field(default_factory=list)


def succeed(
    conn: Connection,
    run_id: uuid.UUID,
    step: str,
    owner: str,
    output: Any,
    *,
    skipped: bool = False,
    result: dict[str, Any] | None = None,
) -> Advance | None:
    """Record success (or a skip) while holding the lease; ``None`` if the lease was lost.

    ``result`` is merged into the run's output if this step finishes the run.
    """
    row = execute_prepared(
        conn,
        [_LOCK_PREPARED, _SUCCEED_PREPARED],
        {
            "run_id": run_id,
            "step": step,
            "owner": owner,
            "output": json.dumps(output),  # as the JSONB type sent it (None: JSON null)
            "final": StepStatus.SKIPPED.value if skipped else StepStatus.SUCCEEDED.value,
            "result": None if result is None else json.dumps(result),
        },
    ).one_or_none()
    if row is None or not row.done:
        return None
    return Advance(str(row.run_status), list(row.ready))


# A compensation finished: its step is compensated, and the next one (the
# most recently finished succeeded step with a compensation left) is sent;
# with none left the run ends failed.
_COMPENSATED = _params(
    f"""
    {LOCK_RUN}
    WITH updated AS (
        UPDATE workflow_steps AS s
        SET status = 'succeeded', output = CAST(:output AS jsonb), error = NULL,
            finished_at = now(), lease_expires_at = NULL, next_attempt_at = NULL,
            {_history("'succeeded'")}
        WHERE s.run_id = :run_id AND s.name = :step
          AND s.status = 'running' AND s.lease_owner = :owner
        RETURNING s.compensates
    ), undone AS (
        UPDATE workflow_steps SET status = 'compensated'
        FROM updated
        WHERE run_id = :run_id AND name = updated.compensates AND status = 'succeeded'
        RETURNING name
    ), next AS (
        SELECT c.name FROM workflow_steps c JOIN workflow_steps t
          ON t.run_id = c.run_id AND t.name = c.compensates
        WHERE c.run_id = :run_id AND c.kind = 'compensation' AND c.status = 'pending'
          AND t.status = 'succeeded' AND c.compensates NOT IN (SELECT name FROM undone)
          AND EXISTS (SELECT 1 FROM updated)
        ORDER BY t.finished_at DESC, t.position DESC LIMIT 1
    ), sent AS (
        UPDATE workflow_steps SET dispatched_at = now(), resends = 0
        FROM next WHERE run_id = :run_id AND workflow_steps.name = next.name
        RETURNING workflow_steps.name
    ), ended AS (
        UPDATE workflow_runs SET status = 'failed', finished_at = now(), updated_at = now()
        WHERE id = :run_id AND status IN ({ACTIVE}) AND EXISTS (SELECT 1 FROM updated)
          AND NOT EXISTS (SELECT 1 FROM next)
        RETURNING status
    )
    SELECT (SELECT count(*) FROM updated) AS done,
           coalesce((SELECT status FROM ended), r.status) AS run_status,
           coalesce((SELECT array_agg(name) FROM sent), '{{}}') AS ready
    FROM workflow_runs r WHERE r.id = :run_id
    """,
    output=JSONB,
)


def compensated(
    conn: Connection, run_id: uuid.UUID, step: str, owner: str, output: Any
) -> Advance | None:
    row = conn.execute(
        _COMPENSATED, {"run_id": run_id, "step": step, "owner": owner, "output": output}
    ).one_or_none()
    if row is None or not row.done:
        return None
    return Advance(str(row.run_status), list(row.ready))


_SCHEDULE_RETRY = _params(
    f"""
    {LOCK_RUN}
    WITH s AS (
        UPDATE workflow_steps AS s
        SET status = 'retrying', error = CAST(:error AS jsonb),
            next_attempt_at = now() + make_interval(secs => :delay),
            lease_expires_at = NULL,
            -- parked: no countdown message carries it; the sweep sends it when due
            dispatched_at = CASE WHEN :parked THEN NULL ELSE now() END,
            {_history("'failed'", "CAST(:error AS jsonb)")}
        WHERE s.run_id = :run_id AND s.name = :step
          AND s.status = 'running' AND s.lease_owner = :owner
        RETURNING s.next_attempt_at
    )
    SELECT s.next_attempt_at, r.status AS run_status
    FROM s, workflow_runs r WHERE r.id = :run_id
    """,
    error=JSONB,
    parked=sa.Boolean,
)


def schedule_retry(
    conn: Connection, run_id: uuid.UUID, step: str, owner: str, error: dict[str, Any],
    delay: float, *, parked: bool = False,
) -> tuple[datetime, str] | None:
    """Move the step to ``retrying``; ``None`` when the lease was lost.

    ``parked``: the delay is too long for a broker countdown, so no message
    carries it and the sweep sends the step when it is due.
    """
    row = conn.execute(
        _SCHEDULE_RETRY,
        {"run_id": run_id, "step": step, "owner": owner, "error": error, "delay": delay,
         "parked": parked},
    ).one_or_none()
    return None if row is None else (row.next_attempt_at, str(row.run_status))


# A step fails for good. If steps it follows have compensations, the run stays
# active (its error set, so no forward step starts) while they run, newest
# first; otherwise the run fails. A failing compensation fails the run.
_FAIL = _params(
    f"""
    {LOCK_RUN}
    WITH failed AS (
        UPDATE workflow_steps AS s
        SET status = 'failed', error = CAST(:error AS jsonb), finished_at = now(),
            lease_expires_at = NULL, next_attempt_at = NULL, waiting_for = NULL,
            {_history("'failed'", "CAST(:error AS jsonb)")}
        WHERE s.run_id = :run_id AND s.name = :step
          AND s.status IN ({FAILABLE})
          AND (CAST(:owner AS text) IS NULL OR s.lease_owner = :owner)
        RETURNING s.kind
    ), next AS (
        SELECT c.name FROM workflow_steps c JOIN workflow_steps t
          ON t.run_id = c.run_id AND t.name = c.compensates
        JOIN workflow_runs r ON r.id = c.run_id
        WHERE c.run_id = :run_id AND c.kind = 'compensation' AND c.status = 'pending'
          AND t.status = 'succeeded' AND r.status IN ({ACTIVE})
          AND EXISTS (SELECT 1 FROM failed WHERE kind <> 'compensation')
        ORDER BY t.finished_at DESC, t.position DESC LIMIT 1
    ), sent AS (
        UPDATE workflow_steps SET dispatched_at = now(), resends = 0
        FROM next WHERE run_id = :run_id AND workflow_steps.name = next.name
        RETURNING workflow_steps.name
    ), run AS (
        UPDATE workflow_runs AS r
        SET status = CASE WHEN EXISTS (SELECT 1 FROM next) THEN r.status ELSE 'failed' END,
            error = CASE
                WHEN (SELECT kind FROM failed) = 'compensation' AND r.error IS NOT NULL
                THEN r.error || jsonb_build_object('compensation_failed', CAST(:error AS jsonb))
                ELSE CAST(:error AS jsonb) END,
            finished_at = CASE WHEN EXISTS (SELECT 1 FROM next) THEN NULL ELSE now() END,
            updated_at = now()
        FROM failed WHERE r.id = :run_id AND r.status IN ({ACTIVE})
        RETURNING r.status
    )
    SELECT coalesce((SELECT status FROM run), r.status) AS run_status,
           coalesce((SELECT array_agg(name) FROM sent), '{{}}') AS ready
    FROM failed, workflow_runs r WHERE r.id = :run_id
    """,
    error=JSONB,
)


def fail(
    conn: Connection, run_id: uuid.UUID, step: str, owner: str | None, error: dict[str, Any]
) -> Advance | None:
    """Fail the step for good; with ``owner=None`` (the sweep) no lease is required."""
    row = conn.execute(
        _FAIL, {"run_id": run_id, "step": step, "owner": owner, "error": error}
    ).one_or_none()
    return None if row is None else Advance(str(row.run_status), list(row.ready))


# -- waits -------------------------------------------------------------------------

# running -> waiting: the lease is released; ``wake_at`` is kept if already set
# (a signal wait's deadline is fixed when it first starts waiting). A signal
# that arrived meanwhile is seen here, under the run lock, so it cannot be missed.
_WAIT = _params(
    f"""
    {LOCK_RUN}
    UPDATE workflow_steps AS s
    SET status = 'waiting', lease_expires_at = NULL, dispatched_at = NULL,
        wake_at = coalesce(s.wake_at, CAST(:absolute AS timestamptz),
                           now() + make_interval(secs => :seconds))
    WHERE s.run_id = :run_id AND s.name = :step AND s.status = 'running'
      AND s.lease_owner = :owner
      AND NOT EXISTS (SELECT 1 FROM workflow_signals g
                      WHERE g.run_id = :run_id AND g.name = s.signal AND g.consumed_by IS NULL)
    RETURNING s.wake_at
    """,
    absolute=sa.DateTime(timezone=True),
)


def wait(
    conn: Connection, run_id: uuid.UUID, step: str, owner: str, *, seconds: float,
    absolute: datetime | None = None,
) -> datetime | None:
    """Park the step until its wake-up time. ``None``: a signal is there (or the lease is gone)."""
    row = conn.execute(
        _WAIT,
        {"run_id": run_id, "step": step, "owner": owner, "seconds": seconds, "absolute": absolute},
    ).one_or_none()
    return None if row is None else row.wake_at


_CONSUME_SIGNAL = _params(
    """
    UPDATE workflow_signals SET consumed_by = :step
    WHERE id = (SELECT id FROM workflow_signals
                WHERE run_id = :run_id AND name = :signal AND consumed_by IS NULL
                ORDER BY id LIMIT 1 FOR UPDATE)
    RETURNING payload
    """
)


def consume_signal(conn: Connection, run_id: uuid.UUID, step: str, signal: str) -> tuple[bool, Any]:
    """Take the oldest unconsumed ``signal`` of the run for ``step``: (found, payload)."""
    row = conn.execute(
        _CONSUME_SIGNAL, {"run_id": run_id, "step": step, "signal": signal}
    ).one_or_none()
    return (False, None) if row is None else (True, row.payload)


_DELIVER_SIGNAL = _params(
    f"""
    {LOCK_RUN}
    WITH stored AS (
        INSERT INTO workflow_signals (run_id, name, payload, idempotency_key)
        SELECT :run_id, :signal, CAST(:payload AS jsonb), :key
        FROM workflow_runs r WHERE r.id = :run_id AND r.status IN ({ACTIVE})
        ON CONFLICT (run_id, name, idempotency_key) DO NOTHING
        RETURNING id
    ), woken AS (
        UPDATE workflow_steps SET status = 'pending', dispatched_at = now(), resends = 0
        WHERE run_id = :run_id AND status = 'waiting' AND signal = :signal
          AND EXISTS (SELECT 1 FROM stored)
        RETURNING name
    )
    SELECT r.status AS run_status, (SELECT count(*) FROM stored) AS stored,
           coalesce((SELECT array_agg(name) FROM woken), '{{}}') AS woken
    FROM workflow_runs r WHERE r.id = :run_id
    """,
    payload=JSONB,
)


@dataclass(frozen=True)
class Delivered:
    run_status: str
    stored: bool  # False: a repeated delivery (same Idempotency-Key), or the run is finished
    woken: list[str]


def deliver_signal(
    conn: Connection, run_id: uuid.UUID, signal: str, payload: Any, key: str | None
) -> Delivered | None:
    """Store a signal and wake a step waiting for it; ``None`` when there is no such run."""
    row = conn.execute(
        _DELIVER_SIGNAL, {"run_id": run_id, "signal": signal, "payload": payload, "key": key}
    ).one_or_none()
    if row is None:
        return None
    return Delivered(str(row.run_status), bool(row.stored), list(row.woken))


# waiting -> pending for waits that are due, across runs (the sweep / timer task)
_WAKE_DUE = sa.text(
    f"""
    WITH due AS (
        SELECT s.run_id, s.name FROM workflow_steps s
        WHERE s.status IN ({WAKEABLE}) AND s.wake_at <= now() + make_interval(secs => :slack)
        ORDER BY s.wake_at LIMIT :batch
        FOR UPDATE OF s SKIP LOCKED
    )
    UPDATE workflow_steps AS s SET status = 'pending', dispatched_at = now(), resends = 0
    FROM due, workflow_runs r
    WHERE s.run_id = due.run_id AND s.name = due.name AND r.id = s.run_id
      AND r.status IN ({ACTIVE})
    RETURNING s.run_id, r.name AS workflow, s.name
    """
)


def wake_due(conn: Connection, batch: int = 500) -> list[tuple[uuid.UUID, str, str]]:
    """Wake sleeps and signal waits whose time has come: (run id, workflow, step) to send.

    Locks steps before their runs, unlike the rest: it skips locked rows and
    never waits on a run, so it cannot deadlock with them.
    """
    rows = conn.execute(_WAKE_DUE, {"slack": EARLY_SLACK_SECONDS, "batch": batch}).all()
    return [(r.run_id, r.workflow, r.name) for r in rows]


# -- operators' actions -------------------------------------------------------------

# A cancelled run's unstarted steps are no longer "sent": the sweep's index of
# pending, sent steps stays the size of the live work.
_CANCEL = _params(
    f"""
    WITH run AS (
        UPDATE workflow_runs SET status = 'cancelled', finished_at = now(), updated_at = now()
        WHERE id = :run_id
          AND status IN ({sql_list(frozenset({RunStatus.PENDING, RunStatus.RUNNING}))})
        RETURNING name
    ), unsent AS (
        UPDATE workflow_steps SET dispatched_at = NULL
        FROM run WHERE run_id = :run_id AND status = 'pending' AND dispatched_at IS NOT NULL
    )
    SELECT name FROM run
    """
)


def cancel(conn: Connection, run_id: uuid.UUID) -> str | None:
    """pending/running → cancelled; the run's name, or ``None`` if not allowed."""
    return conn.execute(_CANCEL, {"run_id": run_id}).scalar()


# failed/cancelled → pending; failed and retrying steps get a fresh budget; the
# steps that are ready then are marked sent. A run whose forward steps are all
# done has nothing to resume (its last step finished after a cancel).
_RETRY = _params(
    f"""
    {LOCK_RUN}
    WITH open AS (
        SELECT count(*) AS n FROM workflow_steps
        WHERE run_id = :run_id AND kind <> 'compensation' AND status NOT IN ({DONE})
    ), undone AS (
        SELECT count(*) AS n FROM workflow_steps WHERE run_id = :run_id AND status = 'compensated'
    ), run AS (
        UPDATE workflow_runs
        SET status = 'pending', error = NULL, finished_at = NULL, recovery_count = 0,
            updated_at = now()
        FROM open, undone
        WHERE id = :run_id AND status IN ({sql_list(frozenset({RunStatus.FAILED, RunStatus.CANCELLED}))})
          AND open.n > 0 AND undone.n = 0
        RETURNING name
    ), reset AS (
        UPDATE workflow_steps AS s
        SET status = 'pending', attempts = 0, error = NULL, next_attempt_at = NULL,
            finished_at = NULL, wake_at = NULL, lease_expires_at = NULL, dispatched_at = NULL
        FROM run
        WHERE s.run_id = :run_id AND s.status IN ({RETRY_RESETTABLE}) AND s.status <> 'pending'
        RETURNING s.name
    )
    SELECT (SELECT name FROM run) AS name, open.n AS open, undone.n AS compensated
    FROM open, undone
    """
)

# After a retry (or a fork) committed: every pending forward step whose
# predecessors are all done is ready; mark it sent.
_DISPATCH_READY = _params(
    f"""
    {LOCK_RUN}
    UPDATE workflow_steps AS n SET dispatched_at = now(), resends = 0
    FROM workflow_runs r
    WHERE n.run_id = :run_id AND r.id = :run_id AND r.status IN ({ACTIVE})
      AND n.status = 'pending' AND n.kind <> 'compensation'
      AND NOT EXISTS (
          SELECT 1 FROM workflow_steps q
          WHERE q.run_id = :run_id AND q.name = ANY(n.after) AND q.status NOT IN ({DONE}))
    RETURNING n.name
    """
)


@dataclass(frozen=True)
class Retried:
    name: str | None  # the workflow's name; None when the transition was refused
    open_steps: int
    compensated_steps: int


def retry(conn: Connection, run_id: uuid.UUID) -> Retried:
    row = conn.execute(_RETRY, {"run_id": run_id}).one()
    return Retried(row.name, int(row.open), int(row.compensated))


def dispatch_ready(conn: Connection, run_id: uuid.UUID) -> list[str]:
    """Mark the run's ready steps sent and return their names (send after commit)."""
    return list(conn.execute(_DISPATCH_READY, {"run_id": run_id}).scalars())


_EXPIRE_LEASE = _params(
    f"""
    {LOCK_RUN}
    UPDATE workflow_steps SET lease_expires_at = now() - interval '1 second'
    WHERE run_id = :run_id AND name = :step AND status = 'running' AND lease_owner = :owner
    """
)


def expire_lease(conn: Connection, run_id: uuid.UUID, step: str, owner: str) -> bool:
    """End a lease whose holder is known to be dead, so the step can be claimed now."""
    return bool(
        conn.execute(_EXPIRE_LEASE, {"run_id": run_id, "step": step, "owner": owner}).rowcount
    )


# -- admission refused (app.engine.admission) ----------------------------------------

# No status changes: the step says what it waits for, and the sweep sees that its
# message is alive (a pending step's dispatch mark, a retrying step's due time), so
# it does not send a second one (one small write per refused attempt).
_NOTE_THROTTLED = _params(
    """
    UPDATE workflow_steps
    SET waiting_for = :why,
        dispatched_at = CASE WHEN status = 'pending' THEN now() ELSE dispatched_at END,
        next_attempt_at = CASE WHEN status = 'retrying'
                               THEN now() + make_interval(secs => :delay)
                               ELSE next_attempt_at END
    WHERE run_id = :run_id AND name = :step AND status IN ('pending', 'retrying')
    """
)


def note_throttled(
    conn: Connection, run_id: uuid.UUID, step: str, why: str, delay: float
) -> None:
    conn.execute(_NOTE_THROTTLED, {"run_id": run_id, "step": step, "why": why, "delay": delay})
