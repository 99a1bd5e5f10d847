"""Start many runs of one workflow in one transaction (issue 15: bulk loads).

``WorkflowManager.start_many`` is the entry point; this module holds the
pieces. The invariants are those of a single start (DESIGN §3), kept for the
whole batch at once:

- **All or nothing.** Every item is validated before anything is written; one
  bad item is a 422 naming each bad item by its index, and no row is written.
  An idempotency key used with another body, or twice within the batch, also
  writes nothing.
- **One transaction, two statements.** One multi-row ``INSERT ... ON CONFLICT
  (idempotency_key, name) DO NOTHING RETURNING`` for the runs and one for the
  steps of the runs it really inserted. Each statement takes its rows as a
  single JSON parameter (``jsonb_to_recordset``), so a thousand runs cost two
  round trips and a statement that compiles once, not a thousand ``VALUES``
  tuples of bind parameters.
- **Idempotency keys as in ``start``.** The unique (key, name) constraint
  decides a race with another transaction; an item whose key exists with the
  same request hash answers with the existing run (``created=False``).
- **Send after commit.** Each new run's root steps are sent once the
  transaction committed (the same ``send`` as ``start``; a failed send is the
  recovery sweep's, as always). The roots are the rows ``step_rows_of`` marks
  as sent, so what is marked and what is sent cannot differ.

The runs a batch returns are read back by its own statements (``RETURNING``
the columns ``get`` selects), so each run has the shape ``start`` and ``get``
give, with the values as stored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.engine.definition import Workflow
from app.engine.errors import IdempotencyConflict, InvalidInput
from app.engine.manager import (
    RUN_COLUMNS,
    STEP_COLUMNS,
    RunDict,
    StartResult,
    WorkflowManager,
    step_rows_of,
)
from app.engine.models import runs, steps
from app.engine.serialize import request_hash

BATCH_MAX = 1000
KEY_LENGTH: int = runs.c.idempotency_key.type.length  # type: ignore[attr-defined]


@dataclass(frozen=True)
class BatchItem:
    """One run to start: its input and, optionally, its idempotency key."""

    input: Any
    idempotency_key: str | None = None


@dataclass(frozen=True)
class _Prepared:
    run_id: uuid.UUID
    data: dict[str, Any]
    key: str | None
    digest: str | None


# -- pure helpers --------------------------------------------------------------


def as_items(items: Sequence[BatchItem | Mapping[str, Any]]) -> list[BatchItem]:
    """``BatchItem``s from items given as such or as ``{"input", "idempotency_key"}``."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InvalidInput("items must be a list", details={"items": ["Must be a list."]})
    check_size(len(items))
    out: list[BatchItem] = []
    problems: dict[str, Any] = {}
    for index, item in enumerate(items):
        if isinstance(item, BatchItem):
            out.append(item)
            continue
        if not isinstance(item, Mapping):
            problems[str(index)] = {"_schema": ["Must be an object with input."]}
            continue
        unknown = sorted(str(k) for k in item if k not in ("input", "idempotency_key"))
        if "input" not in item or unknown:
            found: dict[str, list[str]] = {}
            if "input" not in item:
                found["input"] = ["Missing data for required field."]
            for name in unknown:
                found[name] = ["Unknown field."]
            problems[str(index)] = found
            continue
        out.append(BatchItem(item["input"], item.get("idempotency_key")))
    if problems:
        raise _invalid(problems, len(items))
    return out


def check_size(count: int) -> None:
    if count < 1:
        raise InvalidInput(
            "a batch needs at least one item", details={"items": ["Must hold at least 1 item."]}
        )
    if count > BATCH_MAX:
        raise InvalidInput(
            f"a batch holds at most {BATCH_MAX} items, not {count}; split it",
            details={"items": [f"Must hold at most {BATCH_MAX} items (got {count})."]},
        )


def key_problems(items: Sequence[BatchItem]) -> dict[str, dict[str, list[str]]]:
    """Bad idempotency keys by item index: wrong type or length, NUL, or used twice."""
    problems: dict[str, dict[str, list[str]]] = {}
    first_use: dict[str, int] = {}
    for index, item in enumerate(items):
        key = item.idempotency_key
        if key is None:
            continue
        message = None
        if not isinstance(key, str):
            message = "Not a valid string."
        elif not 1 <= len(key) <= KEY_LENGTH:
            message = f"Length must be between 1 and {KEY_LENGTH}."
        elif "\x00" in key:
            message = "must not contain a NUL character (\\u0000)"
        elif key in first_use:
            message = f"also used by item {first_use[key]} of this batch; keys must be distinct"
        else:
            first_use[key] = index
        if message is not None:
            problems[str(index)] = {"idempotency_key": [message]}
    return problems


def prepare(
    manager: WorkflowManager, workflow: Workflow, items: Sequence[BatchItem]
) -> list[_Prepared]:
    """Validate every item (its input as ``start`` does, and its key); nothing is written.

    Raises one ``InvalidInput`` naming every bad item: ``{"items": {"<index>":
    {"input": {field: [...]}, "idempotency_key": [...]}}}``.
    """
    problems: dict[str, dict[str, Any]] = key_problems(items)
    prepared: list[_Prepared] = []
    for index, item in enumerate(items):
        try:
            data = manager.validate_input(workflow, item.input)
        except InvalidInput as exc:
            problems.setdefault(str(index), {}).update(exc.details)
            continue
        key = item.idempotency_key
        digest = request_hash(data) if key is not None else None
        prepared.append(_Prepared(uuid.uuid4(), data, key, digest))
    if problems:
        raise _invalid(problems, len(items))
    return prepared


def _invalid(problems: Mapping[str, Any], total: int) -> InvalidInput:
    ordered = dict(sorted(problems.items(), key=lambda kv: int(kv[0])))
    first = ", ".join(list(ordered)[:10]) + (", ..." if len(ordered) > 10 else "")
    return InvalidInput(
        f"{len(ordered)} of {total} items are invalid (item {first}); nothing was started",
        details={"items": ordered},
    )


def step_template(step_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``step_rows_of``'s rows as JSON: its ``dispatched_at = now()`` becomes a flag."""
    return [
        {k: v for k, v in row.items() if k != "dispatched_at"}
        | {"dispatched": row["dispatched_at"] is not None}
        for row in step_rows
    ]


# -- SQL -----------------------------------------------------------------------


def _columns(columns: Sequence[sa.Column[Any]]) -> str:
    return ", ".join(c.name for c in columns)


# one statement per table, each compiled once: the rows travel as one JSON parameter
_INSERT_RUNS = sa.text(
    f"""
    INSERT INTO workflow_runs (id, name, status, input, idempotency_key, request_hash,
                               definition_version, created_at, updated_at)
    SELECT r.id, :name, 'pending', r.input, r.idempotency_key, r.request_hash,
           :version, now(), now()
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
         AS r(id uuid, input jsonb, idempotency_key text, request_hash text)
    ON CONFLICT (idempotency_key, name) DO NOTHING
    RETURNING {_columns(RUN_COLUMNS)}
    """
).columns(*RUN_COLUMNS)
# every new run gets the same rows: the new run ids times the workflow's step template
_INSERT_STEPS = sa.text(
    f"""
    INSERT INTO workflow_steps (run_id, position, name, status, attempts, after, kind,
                                signal, compensates, dispatched_at)
    SELECT r.id, s.position, s.name, s.status, s.attempts, s.after, s.kind,
           s.signal, s.compensates, CASE WHEN s.dispatched THEN now() END
    FROM unnest(CAST(:run_ids AS uuid[])) AS r(id)
    CROSS JOIN jsonb_to_recordset(CAST(:steps AS jsonb))
         AS s(position smallint, name text, status text, attempts integer, after text[],
              kind text, signal text, compensates text, dispatched boolean)
    RETURNING run_id, {_columns(STEP_COLUMNS)}
    """
).columns(steps.c.run_id, *STEP_COLUMNS)


_EXISTING = sa.text(
    """
    SELECT id, idempotency_key, request_hash FROM workflow_runs
    WHERE name = :name AND idempotency_key = ANY(CAST(:keys AS text[]))
    """
).columns(sa.column("id", sa.Uuid), sa.column("idempotency_key"), sa.column("request_hash"))


def read_runs(conn: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, RunDict]:
    """Runs with their steps, as ``get`` reads them, in two queries for any number."""
    if not ids:
        return {}
    found = {
        row["id"]: dict(row) | {"steps": []}
        for row in conn.execute(sa.select(*RUN_COLUMNS).where(runs.c.id.in_(ids))).mappings()
    }
    query = (
        sa.select(steps.c.run_id, *STEP_COLUMNS)
        .where(steps.c.run_id.in_(ids))
        .order_by(steps.c.run_id, steps.c.position)
    )
    for row in conn.execute(query).mappings():
        step = dict(row)
        found[step.pop("run_id")]["steps"].append(step)
    return found


def record(
    conn: Connection,
    workflow: Workflow,
    prepared: Sequence[_Prepared],
    step_rows: Sequence[Mapping[str, Any]],
) -> list[tuple[RunDict, bool]]:
    """Insert what is new, check what is not; per item in order, the run and whether it is new.

    Raises ``IdempotencyConflict`` (before the steps are inserted; the caller's
    transaction then rolls back) when a key exists with another request hash.
    """
    rows = [
        {"id": str(p.run_id), "input": p.data, "idempotency_key": p.key, "request_hash": p.digest}
        for p in prepared
    ]
    inserted = {
        row["id"]: dict(row) | {"steps": []}
        for row in conn.execute(
            _INSERT_RUNS,
            {"name": workflow.name, "version": getattr(workflow, "version", None),
             "rows": json.dumps(rows)},
        ).mappings()
    }
    refused = [p for p in prepared if p.run_id not in inserted]
    # a run is refused only for its key: each refused item has one existing run
    existing: dict[str | None, Mapping[str, Any]] = {}
    if refused:
        keys = [p.key for p in refused]
        existing = {
            row["idempotency_key"]: dict(row)
            for row in conn.execute(_EXISTING, {"name": workflow.name, "keys": keys}).mappings()
        }
    conflicts = {
        str(index): {"idempotency_key": p.key, "run_id": str(existing[p.key]["id"])}
        for index, p in enumerate(prepared)
        if p.run_id not in inserted and existing[p.key]["request_hash"] != p.digest
    }
    if conflicts:
        raise IdempotencyConflict(
            f"{len(conflicts)} idempotency key(s) of this batch were already used with a "
            "different input; nothing was started",
            details={"items": conflicts},
        )
    if inserted:
        template = json.dumps(step_template(step_rows))
        for row in conn.execute(
            _INSERT_STEPS, {"run_ids": [str(i) for i in inserted], "steps": template}
        ).mappings():
            step = dict(row)
            inserted[step.pop("run_id")]["steps"].append(step)
        for run in inserted.values():
            run["steps"].sort(key=lambda s: s["position"])
    replayed = read_runs(conn, [existing[p.key]["id"] for p in refused])
    return [
        (inserted[p.run_id], True)
        if p.run_id in inserted
        else (replayed[existing[p.key]["id"]], False)
        for p in prepared
    ]


def start_many(
    manager: WorkflowManager, name: str, items: Sequence[BatchItem | Mapping[str, Any]]
) -> list[StartResult]:
    """Validate all, record all in one transaction, then send each new run's roots."""
    workflow = manager.registry.get(name)
    batch = as_items(items)
    prepared = prepare(manager, workflow, batch)
    step_rows = step_rows_of(workflow)
    roots = [row["name"] for row in step_rows if row["dispatched_at"] is not None]
    with manager.engine.begin() as conn:
        recorded = record(conn, workflow, prepared, step_rows)
    for run, created in recorded:
        if created:
            manager.outbox.put(run["id"], name, roots)
    return [StartResult(run, created=created) for run, created in recorded]
