"""A run and its steps recorded by one statement: the start's single round trip.

``WorkflowManager.start`` sends this on an autocommit connection, so starting
a run costs one round trip and its durable commit — no BEGIN, no separate
COMMIT, and no per-call SQL compilation (the text is constant; the steps go in
as one JSON parameter; the statement is prepared once per connection,
``app.engine.prepared``). The idempotency key's unique index still decides a
race: a conflicting insert returns no row and writes no steps.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from app.engine.definition import Workflow
from app.engine.prepared import execute as execute_prepared
from app.engine.prepared import prepared
from app.engine.states import StepKind

_RECORD = prepared("stepwise_start", """
    WITH run AS (
        INSERT INTO workflow_runs (id, name, status, input, idempotency_key, request_hash,
                                   definition_version, created_at, updated_at)
        VALUES (:run_id, :name, 'pending', CAST(:input AS jsonb), :key, :hash, :version,
                now(), now())
        ON CONFLICT (idempotency_key, name) DO NOTHING
        RETURNING created_at
    ), new_steps AS (
        INSERT INTO workflow_steps (run_id, position, name, status, attempts, after, kind,
                                    signal, compensates, dispatched_at)
        SELECT :run_id, s.position, s.name, 'pending', 0, s.after, s.kind, s.signal,
               s.compensates, CASE WHEN s.sent THEN now() END
        FROM run, jsonb_to_recordset(CAST(:steps AS jsonb)) AS s(
            position int, name text, after varchar[], kind text, signal text,
            compensates text, sent boolean)
    )
    SELECT created_at FROM run
""", [
    ("run_id", "uuid"), ("name", "text"), ("input", "text"), ("key", "text"), ("hash", "text"),
    ("version", "int"), ("steps", "text"),
])


@functools.lru_cache(maxsize=512)
def steps_json(workflow: Workflow) -> str:
    """The new run's copy of the graph, as the statement's one JSON parameter.

    Roots are marked sent (``dispatched_at``): the start sends them. The same
    for every run of a (frozen) workflow, so it is built once per workflow
    object (a stored workflow's versions are objects of their own).
    """
    return json.dumps([
        {
            "position": s.position,
            "name": s.name,
            "after": list(s.after),
            "kind": s.kind.value,
            "signal": s.signal,
            "compensates": s.compensates,
            "sent": not s.after and s.kind is not StepKind.COMPENSATION,
        }
        for s in workflow.steps
    ])


def record_run(
    conn: Connection,
    *,
    run_id: uuid.UUID,
    workflow: Workflow,
    data: Any,
    idempotency_key: str | None,
    digest: str | None,
) -> datetime | None:
    """Insert the run and its steps; its ``created_at``, or None if the key was taken."""
    created: datetime | None = execute_prepared(
        conn,
        [_RECORD],
        {
            "run_id": run_id,
            "name": workflow.name,
            "input": json.dumps(data),
            "key": idempotency_key,
            "hash": digest,
            "version": getattr(workflow, "version", None),
            "steps": steps_json(workflow),
        },
    ).scalar_one_or_none()
    return created
