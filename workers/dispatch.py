"""Sending a run: a chain of immutable, run-id-only signatures, one per step."""

from __future__ import annotations

import uuid

from celery import chain

from app.engine.registry import registry


def celery_dispatch(run_id: uuid.UUID, workflow: str, position: int) -> None:
    """Send the steps of ``workflow`` from ``position`` on as one Celery chain."""
    from workers.celery_app import app

    definition = registry.get(workflow)
    signatures = [
        app.signature(step.task_name, args=(str(run_id),), immutable=True)
        for step in definition.steps[position:]
    ]
    if not signatures:
        return
    if len(signatures) == 1:
        signatures[0].apply_async()
    else:
        chain(*signatures).apply_async()
