"""Periodic jobs that beat sends (see ``celerybeat-schedule.py``)."""

from __future__ import annotations

import structlog

from app.runtime import get_manager
from app.settings import get_settings
from workers.celery_app import app

log = structlog.get_logger("stepwise.periodic")


@app.task(name="stepwise.recover", ignore_result=True, acks_late=False)
def recover() -> dict[str, int]:
    """Re-send stalled runs from Postgres; dead-letter those over the recovery limit."""
    report = get_manager().recover()
    return {
        "resent": len(report.resent),
        "dead_lettered": len(report.dead_lettered),
        "missing_step": len(report.failed_missing_step),
    }


@app.task(name="stepwise.cleanup", ignore_result=True, acks_late=False)
def cleanup() -> int:
    """Delete finished runs older than ``WORKFLOW_CLEANUP_RETENTION``, in batches."""
    deleted = get_manager().cleanup(get_settings().workflow_cleanup_retention)
    if deleted:
        log.info("cleaned up finished runs", deleted=deleted)
    return deleted
