"""Retry or cancel every run a filter matches (DESIGN §12), one run at a time.

There is no set-wide ``UPDATE``: each run goes through the manager's own
``retry``/``cancel``, i.e. its own compare-and-set transition and, for a
retry, its own send after commit. A run that a worker or another operator
moved after it was matched simply loses its compare-and-set and is reported
as skipped with the reason; nothing is half-applied, and running the same
call again is safe (retried runs are pending, so a ``status=failed`` filter
matches the next batch).

The transitions are independent, so a few run at once (``CONCURRENCY``
threads, each with its own pooled connection): a transition is a handful of
round trips and a broker send, latency rather than CPU, and a thousand of
them one after another would hold the web request for tens of seconds on a
busy database. The answer keeps the matched order (newest first).

A call also has a time budget (``TIME_BUDGET_S``, under gunicorn's 30 s worker
timeout): runs not reached in time are left untouched and listed as skipped
with a reason that says to call again — rather than the web worker being
killed mid-way and the operator getting no answer at all.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from app.engine.errors import IllegalTransition, RunNotFound
from app.engine.manager import WorkflowManager
from app.engine.queries import RunFilter, matching_ids

log = logging.getLogger(__name__)

BULK_MAX = 1000
CONCURRENCY = 4  # below the engine's pool (5 + overflow) so requests still get a connection
TIME_BUDGET_S = 20.0
OUT_OF_TIME = "not attempted: this call ran out of time; call again for the rest"
Action = Literal["retry", "cancel"]
ACTIONS: tuple[Action, ...] = ("retry", "cancel")


@dataclass
class BulkResult:
    matched: int = 0
    changed: list[uuid.UUID] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"matched": self.matched, "changed": self.changed, "skipped": self.skipped}


def bulk_transition(
    manager: WorkflowManager,
    action: Action,
    filters: RunFilter,
    limit: int = BULK_MAX,
    *,
    time_budget: float = TIME_BUDGET_S,
) -> BulkResult:
    """Apply ``action`` to the newest ``limit`` runs matching ``filters``."""
    deadline = time.monotonic() + time_budget
    if action not in ACTIONS:
        raise ValueError(f"unknown bulk action {action!r}")
    limit = max(1, min(limit, BULK_MAX))
    with manager.engine.connect() as conn:
        ids = matching_ids(conn, filters, limit)
    apply: Callable[[uuid.UUID], Any] = manager.retry if action == "retry" else manager.cancel

    def attempt(run_id: uuid.UUID) -> str | None:
        """None when the transition applied, else why not."""
        if time.monotonic() >= deadline:
            return OUT_OF_TIME
        try:
            apply(run_id)
        except IllegalTransition as exc:
            return exc.message
        except RunNotFound:  # removed by the clean-up job since it was matched
            return "the run no longer exists"
        return None

    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="bulk") as pool:
        outcomes = list(pool.map(attempt, ids))
    result = BulkResult(matched=len(ids))
    for run_id, reason in zip(ids, outcomes, strict=True):
        if reason is None:
            result.changed.append(run_id)
        else:
            result.skipped.append({"id": run_id, "reason": reason})
    log.info(
        "bulk %s: %d matched, %d changed, %d skipped",
        action,
        result.matched,
        len(result.changed),
        len(result.skipped),
    )
    return result
