"""Admission under a workflow's concurrency cap and a step's rate limit.

Decided in Postgres, in the claim's own transaction and before the claim, so
every worker sees one count: a workflow with ``max_concurrent_runs=N`` has at
most N runs with a task step running (a run's parallel branches share its
slot; a run that sleeps or waits for a signal holds none), and a step with
``rate_limit=R`` starts at most once per 1/R seconds. A refused attempt is
not an error: the step stays ``pending`` (or ``retrying``) with the reason in
``waiting_for``, and its message comes back after the returned delay. Steps
with neither limit never reach this module.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.engine.definition import StepDefinition, Workflow
from app.engine.states import StepKind

# A run refused a concurrency slot looks again after about this long.
CONCURRENCY_RECHECK = 1.0


@dataclass(frozen=True)
class Throttled:
    """Not admitted now: come back after ``delay`` seconds."""

    delay: float
    reason: str


def needs_admission(workflow: Workflow, step: StepDefinition) -> bool:
    return step.kind is StepKind.TASK and (
        workflow.max_concurrent_runs is not None or step.rate_limit is not None
    )


# Admissions of one capped workflow take turns: the count and the claim that
# follows it are one decision, so two workers cannot both take the last slot.
_TURN = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_EXECUTING = sa.text(
    """
    SELECT count(DISTINCT s.run_id)
    FROM workflow_runs r JOIN workflow_steps s ON s.run_id = r.id
    WHERE r.name = :workflow AND r.status = 'running' AND r.id <> :run_id
      AND s.status = 'running' AND s.kind = 'task' AND s.lease_expires_at > now()
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid))
# Moves the step's next start forward under its row lock, or leaves it (and
# says nothing) when that start is still ahead.
_TAKE_START = sa.text(
    """
    INSERT INTO workflow_step_rates AS r (task, next_at)
    VALUES (:task, now() + make_interval(secs => :spacing))
    ON CONFLICT (task) DO UPDATE SET next_at = now() + make_interval(secs => :spacing)
    WHERE r.next_at <= now()
    RETURNING 1
    """
)
_NEXT_START_IN = sa.text(
    "SELECT extract(epoch FROM next_at - now()) FROM workflow_step_rates WHERE task = :task"
)


def concurrency_reason(workflow: Workflow) -> str:
    return (
        f"a concurrency slot: workflow {workflow.name!r} runs at most "
        f"{workflow.max_concurrent_runs} at once"
    )


def rate_reason(step: StepDefinition) -> str:
    return f"its rate limit: step {step.task_name!r} starts at most {step.rate_limit:g} times a second"


def admit(
    conn: Connection, workflow: Workflow, step: StepDefinition, run_id: uuid.UUID
) -> Throttled | None:
    """None when the attempt may be claimed now (in this same transaction)."""
    cap = workflow.max_concurrent_runs
    if cap is not None:
        conn.execute(_TURN, {"key": f"stepwise:concurrency:{workflow.name}"})
        executing = conn.execute(_EXECUTING, {"workflow": workflow.name, "run_id": run_id}).scalar()
        if int(executing or 0) >= cap:
            delay = CONCURRENCY_RECHECK * random.uniform(0.5, 1.5)
            return Throttled(delay, concurrency_reason(workflow))
    if step.rate_limit is not None:
        spacing = 1.0 / step.rate_limit
        if conn.execute(_TAKE_START, {"task": step.task_name, "spacing": spacing}).first() is None:
            wait = float(conn.execute(_NEXT_START_IN, {"task": step.task_name}).scalar() or 0.0)
            # spread the waiters over the next slots rather than all at one instant
            delay = max(wait, 0.01) + random.uniform(0.0, min(spacing, 1.0))
            return Throttled(delay, rate_reason(step))
    return None
