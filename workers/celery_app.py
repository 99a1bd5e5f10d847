"""Builds the Celery app from settings: config, step tasks, periodic jobs, signals."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path
from typing import Any

import structlog
from celery import Celery, signals

from app.engine.db import dispose_engines
from app.engine.registry import registry
from app.logging_setup import configure_logging
from app.runtime import load_workflows
from app.settings import get_settings
from workers.config import ROOT, STATE_DIR, celery_config
from workers.steps import register_step_tasks

SCHEDULE_FILE = ROOT / "celerybeat-schedule.py"


def load_beat_schedule(path: Path = SCHEDULE_FILE) -> dict[str, Any]:
    """Read ``beat_schedule`` from the top-level ``celerybeat-schedule.py``."""
    spec = importlib.util.spec_from_file_location("stepwise_beat_schedule", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the beat schedule from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    schedule: dict[str, Any] = module.build_schedule(get_settings())
    return schedule


def create_celery() -> Celery:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    load_workflows(settings)
    celery_app = Celery("stepwise")
    celery_app.conf.update(celery_config(settings))
    celery_app.conf.beat_schedule = load_beat_schedule()
    # stamps each scheduled workflow's slot, so two beats never double a run
    celery_app.conf.beat_scheduler = "workers.periodic:SlotScheduler"
    STATE_DIR.mkdir(exist_ok=True)
    return celery_app


app = create_celery()
register_step_tasks(app, registry)
import workers.inspect  # noqa: E402,F401  (registers ``inspect current_steps``)
import workers.periodic  # noqa: E402,F401  (registers the periodic tasks)


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # a pool inherited across fork would share sockets with the parent
    dispose_engines()
    # Process managers (honcho, docker, systemd's default) signal the whole
    # process group. Celery resets SIGTERM to "die" in pool children, which would
    # kill a running step mid-way; ignoring it here lets the main process do a
    # warm shutdown: running steps finish and checkpoint, then the children
    # exit. A hard time limit or a cold shutdown still ends a child (SIGKILL).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@signals.task_prerun.connect
def _bind_log_context(task: Any = None, args: Any = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    name = getattr(task, "name", "") or ""
    workflow, _, step = name.partition(".")
    if step and workflow in registry and args:
        structlog.contextvars.bind_contextvars(
            run_id=str(args[0]), workflow=workflow, step=step, task_id=task.request.id
        )


@signals.task_postrun.connect
def _clear_log_context(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
