"""``celery -A workers inspect current_steps``: which run and step each worker runs now.

A remote-control command answered by each worker's main process from its
in-memory list of active requests: no database query, so it answers even when
Postgres is slow, and costs nothing when nobody asks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery.worker import state as worker_state
from celery.worker.control import inspect_command

from app.engine.registry import registry


def _since(started: float | None) -> str | None:
    if started is None:
        return None  # received, not yet picked up by a pool process
    return datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")


def describe(request: Any) -> dict[str, Any] | None:
    """One active step task as ``{run_id, workflow, step, since, ...}``; ``None`` if not a step."""
    workflow, _, step = (request.name or "").partition(".")
    if not step or workflow not in registry:
        return None
    args = request.args or ()
    return {
        "run_id": str(args[0]) if args else None,
        "workflow": workflow,
        "step": step,
        "since": _since(request.time_start),
        "task_id": request.id,
        "worker_pid": request.worker_pid,
    }


@inspect_command(alias="dump_current_steps")
def current_steps(state: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Workflow steps this worker is executing now: run id, step, since when."""
    found = (describe(r) for r in list(worker_state.active_requests))
    return sorted((f for f in found if f is not None), key=lambda f: f["since"] or "")
