"""Builds the Celery app from settings: config, step tasks, queues, periodic jobs, signals.

A worker consumes the control queue and the queue of every step it
registered, nothing else (see ``app.messaging``), and tells Postgres which
step tasks it has (a heartbeat), so the sweep can show a run that waits for a
worker nobody has deployed yet instead of failing it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
from pathlib import Path
from typing import Any

import structlog
from celery import Celery, signals
from kombu import Queue

from app.designer import DESIGNED_QUEUE, DESIGNED_TASK
from app.designer.store import step_task_names
from app.engine.db import dispose_engines
from app.engine.registry import registry
from app.logging_setup import configure_logging
from app.messaging import CONTROL_QUEUE, ROOT, STATE_DIR, celery_config, make_dispatch, step_queue
from app.runtime import get_manager, heartbeat_interval, load_workflows
from app.settings import get_settings
from workers.steps import register_designed_task, register_step_tasks

log = structlog.get_logger("stepwise.worker")

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
    # task events (-E, Flower) published in batches, not one message each
    celery_app.conf.worker_consumer = "workers.consumer:Consumer"
    STATE_DIR.mkdir(exist_ok=True)
    return celery_app


app = create_celery()
register_step_tasks(app, registry)
register_designed_task(app)
STEP_TASKS = [s.task_name for w in registry for s in w.steps]
# the control queue, each registered step's queue, the designed workflows' queue,
# and Celery's default queue (messages sent before step queues existed)
app.conf.task_queues = [
    Queue(CONTROL_QUEUE),
    *(Queue(step_queue(name)) for name in STEP_TASKS),
    Queue(DESIGNED_QUEUE),
    Queue("celery"),
]
get_manager().set_dispatch(make_dispatch(app, registry))
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


_stop_heartbeat = threading.Event()


def _worker_name(sender: Any) -> str:
    return f"{getattr(sender, 'hostname', None) or 'worker'}:{os.getpid()}"


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Every few seconds, record in Postgres that this worker lives and what it runs."""
    name = _worker_name(sender)
    interval = heartbeat_interval(get_settings())

    def beat() -> None:
        while not _stop_heartbeat.is_set():
            try:
                manager = get_manager()
                # designed steps all run through the designed task, which this worker has
                designed = step_task_names(manager.engine)
                manager.heartbeat(name, [*STEP_TASKS, DESIGNED_TASK, *designed])
            except Exception as exc:  # the database is down: the sweep waits too
                log.warning("worker heartbeat failed", error=str(exc).partition("\n")[0][:200])
            _stop_heartbeat.wait(interval)

    threading.Thread(target=beat, name="stepwise-heartbeat", daemon=True).start()


@signals.worker_shutdown.connect
def _stop_heartbeat_thread(sender: Any = None, **_: Any) -> None:
    _stop_heartbeat.set()
    try:
        get_manager().forget_worker(_worker_name(sender))
    except Exception as exc:
        log.warning("could not deregister the worker", error=str(exc).partition("\n")[0][:200])
