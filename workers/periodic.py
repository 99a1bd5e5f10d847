"""Periodic jobs that beat sends (see ``celerybeat-schedule.py``), and beat's scheduler."""

from __future__ import annotations

from typing import Any

import structlog
from celery.beat import PersistentScheduler, ScheduleEntry

from app.engine.errors import UnknownWorkflow
from app.engine.recovery import describe
from app.runtime import get_manager
from app.scheduling import START_SCHEDULED, format_slot, schedule_key, slot_for
from app.settings import get_settings
from workers.celery_app import app

log = structlog.get_logger("stepwise.periodic")


@app.task(name="stepwise.recover", ignore_result=True, acks_late=False)
def recover() -> dict[str, int]:
    """Re-send stalled runs from Postgres; dead-letter those over the recovery limit."""
    return describe(get_manager().recover())


@app.task(name="stepwise.cleanup", ignore_result=True, acks_late=False)
def cleanup() -> int:
    """Delete finished runs older than ``WORKFLOW_CLEANUP_RETENTION``, in batches."""
    deleted = get_manager().cleanup(get_settings().workflow_cleanup_retention)
    if deleted:
        log.info("cleaned up finished runs", deleted=deleted)
    return deleted


@app.task(name=START_SCHEDULED, ignore_result=True, acks_late=True)
def start_scheduled(
    workflow: str, payload: dict[str, Any] | None = None, entry: str = "", slot: str = ""
) -> str | None:
    """Start ``workflow`` for one slot of a schedule entry; a slot already started is a no-op.

    Safe to run twice (two beats, a redelivery): the idempotency key is the
    entry and the slot, and the engine's unique key constraint decides.
    """
    if not entry or not slot:
        log.error("scheduled start without entry and slot; not started", workflow=workflow)
        return None
    manager = get_manager()
    try:
        definition = manager.workflow(workflow)
    except UnknownWorkflow:
        log.error("scheduled workflow is not registered (WORKFLOW_MODULES)", workflow=workflow)
        return None
    data = dict(payload or {})
    if "scheduled_for" in definition.input_schema.fields:
        data.setdefault("scheduled_for", slot)
    key = schedule_key(entry, slot)
    result = manager.start(workflow, data, idempotency_key=key)
    log.info(
        "scheduled run started" if result.created else "scheduled slot already started",
        workflow=workflow,
        entry=entry,
        slot=slot,
        idempotency_key=key,
        run_id=str(result.run["id"]),
        created=result.created,
    )
    return str(result.run["id"])


class SlotScheduler(PersistentScheduler):
    """Beat's scheduler: stamps each scheduled-workflow message with its entry and slot.

    The slot is computed from the entry's schedule and the send time (see
    ``app.scheduling``), so every beat process stamps the same slot for the same
    due time and the worker derives the same idempotency key.
    """

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        if entry.task == START_SCHEDULED:
            slot = slot_for(entry.schedule, self.app.now())
            if slot is not None:
                stamped = {**entry.kwargs, "entry": entry.name, "slot": format_slot(slot)}
                entry = entry.__class__(**dict(entry, kwargs=stamped))
        return super().apply_async(entry, producer, advance, **kwargs)
