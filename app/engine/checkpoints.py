"""The step protocol's statements: claim, checkpoint, retry, fail.

Each is one conditional statement (``UPDATE ... WHERE <allowed state> ...
RETURNING``), so a duplicate delivery, a racing worker or an operator's cancel
can never both win. The hot path is counted in round trips: a claim is one
statement that also reads what the step needs (run input, earlier outputs); a
checkpoint is one statement that also moves the run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

# A retry whose countdown message arrives a little early may still run.
EARLY_SLACK_SECONDS = 1.0

# The claim is only a lease: losing it in a crash just leaves the step claimable,
# so its commit need not wait for the WAL flush. Sent with the claim in one query
# string, so on an autocommit connection both run as one implicit transaction in
# one round trip (no BEGIN, no COMMIT message).
_CLAIM = sa.text(
    """
    SET LOCAL synchronous_commit = off;
    WITH claimed AS (
        UPDATE workflow_steps AS s
        SET status = 'running',
            attempts = s.attempts + 1,
            lease_owner = :owner,
            lease_expires_at = now() + make_interval(secs => :lease),
            started_at = now(),
            finished_at = NULL,
            next_attempt_at = NULL
        FROM workflow_steps AS old  -- the row as it was: was this a takeover?
        WHERE s.run_id = :run_id AND s.position = :position
          AND old.run_id = s.run_id AND old.position = s.position
          AND (
                s.status = 'pending'
             OR (s.status = 'retrying'
                 AND (s.next_attempt_at IS NULL
                      OR s.next_attempt_at <= now() + make_interval(secs => :slack)))
             OR (s.status = 'running' AND s.lease_expires_at < now()
                 AND (SELECT recovery_count FROM workflow_runs WHERE id = :run_id) < :limit)
          )
          AND EXISTS (SELECT 1 FROM workflow_runs r
                      WHERE r.id = :run_id AND r.status IN ('pending', 'running'))
        RETURNING s.attempts, old.status = 'running' AS took_over
    ), run AS (
        UPDATE workflow_runs AS r
        SET status = 'running',
            started_at = coalesce(r.started_at, now()),
            updated_at = now(),
            -- taking over an expired lease recovers a lost worker: it counts
            recovery_count = r.recovery_count + CASE WHEN claimed.took_over THEN 1 ELSE 0 END
        FROM claimed
        WHERE r.id = :run_id AND r.status IN ('pending', 'running')
        RETURNING r.input
    )
    SELECT (SELECT attempts FROM claimed) AS attempts,
           (SELECT input FROM run) AS input,
           (SELECT coalesce(jsonb_object_agg(p.name, p.output), '{}'::jsonb)
              FROM workflow_steps p
             WHERE p.run_id = :run_id AND p.position < :position
               AND p.status = 'succeeded') AS outputs
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid))

_INSPECT = sa.text(
    """
    SELECT s.status AS step_status, s.output, s.lease_expires_at, s.next_attempt_at,
           s.lease_owner, s.attempts,
           s.lease_expires_at > now() AS lease_live,
           r.status AS run_status,
           (SELECT n.status FROM workflow_steps n
             WHERE n.run_id = s.run_id AND n.position = s.position + 1) AS next_status
    FROM workflow_steps s JOIN workflow_runs r ON r.id = s.run_id
    WHERE s.run_id = :run_id AND s.position = :position
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid))

_CHECKPOINT = sa.text(
    """
    WITH s AS (
        UPDATE workflow_steps
        SET status = 'succeeded', output = CAST(:output AS jsonb), error = NULL, finished_at = now(),
            lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = NULL
        WHERE run_id = :run_id AND position = :position
          AND status = 'running' AND lease_owner = :owner
        RETURNING run_id
    )
    UPDATE workflow_runs AS r
    SET updated_at = now(),
        status = CASE WHEN :last AND r.status = 'running' THEN 'succeeded' ELSE r.status END,
        finished_at = CASE WHEN :last AND r.status = 'running' THEN now() ELSE r.finished_at END,
        output = CASE WHEN :last AND r.status = 'running'
                 THEN (SELECT coalesce(jsonb_object_agg(p.name, p.output), '{}'::jsonb)
                         FROM workflow_steps p
                        WHERE p.run_id = :run_id AND p.position < :position)
                      || jsonb_build_object(CAST(:step_name AS text), CAST(:output AS jsonb))
                 ELSE r.output END
    FROM s
    WHERE r.id = s.run_id
    RETURNING r.status
    """
).bindparams(
    sa.bindparam("run_id", type_=sa.Uuid),
    sa.bindparam("output", type_=JSONB),
    sa.bindparam("last", type_=sa.Boolean),
)

_SCHEDULE_RETRY = sa.text(
    """
    WITH s AS (
        UPDATE workflow_steps
        SET status = 'retrying', error = CAST(:error AS jsonb),
            next_attempt_at = now() + make_interval(secs => :delay),
            lease_owner = NULL, lease_expires_at = NULL
        WHERE run_id = :run_id AND position = :position
          AND status = 'running' AND lease_owner = :owner
        RETURNING run_id, next_attempt_at
    ), r AS (
        UPDATE workflow_runs SET updated_at = now()
        FROM s WHERE workflow_runs.id = s.run_id
        RETURNING workflow_runs.status
    )
    SELECT s.next_attempt_at, r.status FROM s, r
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid), sa.bindparam("error", type_=JSONB))

_FAIL = sa.text(
    """
    WITH s AS (
        UPDATE workflow_steps
        SET status = 'failed', error = CAST(:error AS jsonb), finished_at = now(),
            lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = NULL
        WHERE run_id = :run_id AND position = :position
          AND status IN ('running', 'pending', 'retrying')
          AND (CAST(:owner AS text) IS NULL OR lease_owner = :owner)
        RETURNING run_id
    )
    UPDATE workflow_runs AS r
    SET status = CASE WHEN r.status IN ('pending', 'running') THEN 'failed' ELSE r.status END,
        error = CASE WHEN r.status IN ('pending', 'running') THEN CAST(:error AS jsonb) ELSE r.error END,
        finished_at = CASE WHEN r.status IN ('pending', 'running') THEN now()
                      ELSE r.finished_at END,
        updated_at = now()
    FROM s WHERE r.id = s.run_id
    RETURNING r.status
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid), sa.bindparam("error", type_=JSONB))


class ClaimOutcome(Enum):
    CLAIMED = "claimed"
    SUCCEEDED = "succeeded"  # already done: replay the stored output
    BUSY = "busy"  # another live lease holds it
    NOT_DUE = "not_due"  # a retry whose delay has not passed
    INACTIVE = "inactive"  # run cancelled, failed, finished, or deleted; or step failed


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    attempt: int = 0
    input: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    output: Any = None
    next_step_pending: bool = False
    lease_owner: str | None = None


def claim(
    conn: Connection,
    run_id: uuid.UUID,
    position: int,
    owner: str,
    lease_seconds: float,
    recovery_limit: int,
) -> Claim:
    """Take the step's lease, or say why not.

    On an autocommit connection the claim is its own (asynchronously committed)
    transaction in one round trip; inside a caller's transaction it commits with it.
    Taking over an expired lease counts as a recovery, and is refused once the
    run is at its recovery limit (the sweep then dead-letters it).
    """
    row = conn.execute(
        _CLAIM,
        {
            "run_id": run_id,
            "position": position,
            "owner": owner,
            "lease": lease_seconds,
            "slack": EARLY_SLACK_SECONDS,
            "limit": recovery_limit,
        },
    ).one()
    if row.attempts is not None and row.input is not None:
        return Claim(ClaimOutcome.CLAIMED, row.attempts, row.input, row.outputs)
    info = conn.execute(_INSPECT, {"run_id": run_id, "position": position}).one_or_none()
    if info is None:
        return Claim(ClaimOutcome.INACTIVE)
    if info.step_status == "succeeded":
        return Claim(
            ClaimOutcome.SUCCEEDED,
            output=info.output,
            next_step_pending=info.next_status == "pending" and info.run_status == "running",
        )
    if info.run_status not in ("pending", "running") or info.step_status == "failed":
        return Claim(ClaimOutcome.INACTIVE)
    if info.step_status == "retrying":
        return Claim(ClaimOutcome.NOT_DUE)
    return Claim(ClaimOutcome.BUSY, attempt=info.attempts, lease_owner=info.lease_owner)


_EXPIRE_LEASE = sa.text(
    """
    UPDATE workflow_steps SET lease_expires_at = now() - interval '1 second'
    WHERE run_id = :run_id AND position = :position
      AND status = 'running' AND lease_owner = :owner
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid))


def expire_lease(conn: Connection, run_id: uuid.UUID, position: int, owner: str) -> bool:
    """End a lease whose holder is known to be dead, so the step can be claimed now."""
    return bool(
        conn.execute(
            _EXPIRE_LEASE, {"run_id": run_id, "position": position, "owner": owner}
        ).rowcount
    )


def checkpoint(
    conn: Connection,
    run_id: uuid.UUID,
    position: int,
    step_name: str,
    owner: str,
    output: Any,
    *,
    last: bool,
) -> str | None:
    """Record success while holding the lease. Returns the run's status, or
    ``None`` when the lease was lost (the caller must roll back).

    One statement: on an autocommit connection it is a transaction on its own
    (one round trip, durably committed); a transactional step runs it inside the
    transaction that holds the step's own writes.
    """
    row = conn.execute(
        _CHECKPOINT,
        {
            "run_id": run_id,
            "position": position,
            "owner": owner,
            "output": output,
            "last": last,
            "step_name": step_name,
        },
    ).one_or_none()
    return None if row is None else str(row.status)


def schedule_retry(
    conn: Connection,
    run_id: uuid.UUID,
    position: int,
    owner: str,
    error: dict[str, Any],
    delay: float,
) -> tuple[datetime, str] | None:
    """Move the step to ``retrying``; ``None`` when the lease was lost."""
    row = conn.execute(
        _SCHEDULE_RETRY,
        {"run_id": run_id, "position": position, "owner": owner, "error": error, "delay": delay},
    ).one_or_none()
    return None if row is None else (row.next_attempt_at, str(row.status))


def fail(
    conn: Connection,
    run_id: uuid.UUID,
    position: int,
    owner: str | None,
    error: dict[str, Any],
) -> str | None:
    """Fail the step and its run. With ``owner=None`` (the sweep), no lease is required."""
    row = conn.execute(
        _FAIL, {"run_id": run_id, "position": position, "owner": owner, "error": error}
    ).one_or_none()
    return None if row is None else str(row.status)
