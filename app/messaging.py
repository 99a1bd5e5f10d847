"""Celery as the carrier: its settings, the queues, and sending steps.

The engine decides in Postgres which steps are ready; this module only
carries them. It builds no worker: the web process sends through a bare
client app (``client_app``), the worker through its own app, both with the
same settings and routes.

Every step task has a queue of its own, ``stepwise.<workflow>.<step>``, and a
worker consumes exactly the queues of the steps it registered. So a worker
that lacks a workflow or a step (a rolling deploy, a pool with other
``WORKFLOW_MODULES``) never receives, discards or fails its messages; they
wait in the broker for a worker that has it. Periodic control work (the
sweep, clean-up, scheduled starts) has its own queue, ``stepwise.control``,
so it never waits behind a backlog of steps. Designed workflows (saved at
runtime, after workers started) share one task and one queue,
``stepwise.designed``, whose messages carry the run id and the step name.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from celery import Celery

from app.designer import DESIGNED_QUEUE, DESIGNED_TASK
from app.engine.registry import Registry
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Beat's own state lives out of the repo root (ignored ``var/``).
STATE_DIR = ROOT / "var"

CONTROL_QUEUE = "stepwise.control"
CONTROL_PREFIX = "stepwise."


def step_queue(task_name: str) -> str:
    return f"stepwise.{task_name}"


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> Any:
    """Celery router: control tasks to the control queue, each known step to its own queue.

    Dispatch names its queue itself; this covers ``send_task`` by name (tests,
    operators) for the workflows this process knows. Anything else keeps
    Celery's default queue.
    """
    if name == DESIGNED_TASK:
        return {"queue": DESIGNED_QUEUE}
    if name.startswith(CONTROL_PREFIX):
        return {"queue": CONTROL_QUEUE}
    from app.engine.registry import registry

    workflow, _dot, step = name.partition(".")
    found = registry.code(workflow)
    if found is not None and found.find_step(step) is not None:
        return {"queue": step_queue(name)}
    return None


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings that do not lose work (STYLE §5), derived from ``Settings``."""
    redis_broker = settings.celery_broker_url.startswith("redis://")
    return {
        "broker_url": settings.celery_broker_url,
        # kombu's Redis transport with one publishing client per channel (app.redis_transport)
        **({"broker_transport": "app.redis_transport:Transport"} if redis_broker else {}),
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": settings.celery_visibility_timeout,
            "socket_connect_timeout": 5,
            "socket_timeout": 30,
            # kombu's Redis transport keeps four lists per queue for message priorities
            # and waits on all of them (BRPOP) after every message it takes; steps are
            # never sent with a priority, and with a queue per step four times the keys
            # cost a worker 0.6 ms per hop here (3.0 -> 2.4 ms, plain chain, c=2)
            **({"priority_steps": [0]} if redis_broker else {}),
        },
        "broker_heartbeat": 10,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 1,
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "result_backend": None,
        "task_routes": (route_task,),
        # task events come from the worker's -E (the Procfile's, DESIGN §1) or from
        # Flower, which turns them on when it connects; a worker run without
        # either does not pay for them (a sixth of its CPU, bench.compare --events off)
        "worker_send_task_events": False,
        # no task-sent events: a publish each per step for a "sent" state Flower can do
        # without (it shows received, started and succeeded from the worker)
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "enable_utc": True,
        "timezone": "UTC",
        "beat_schedule_filename": str(STATE_DIR / "celerybeat-schedule"),
    }


_clients: dict[int, Celery] = {}


def client_app(settings: Settings) -> Celery:
    """A Celery app that only sends (the web process, the CLI): no tasks, no signals."""
    found = _clients.get(id(settings))
    if found is None:
        found = Celery("stepwise-client")
        found.conf.update(celery_config(settings))
        _clients.clear()
        _clients[id(settings)] = found
    return found


def make_dispatch(celery_app: Celery, registry: Registry) -> Any:
    """``dispatch(run_id, workflow, steps, parent=None)`` for the manager.

    Each ready step is sent with its straight continuation as a Celery chain
    (the steps after it that wait for it alone), so a linear workflow is one
    chain, as in plain Celery; the engine still decides every hop in Postgres
    and the worker follows the chain only where Postgres agrees.

    The message is the one ``chain(...).apply_async()`` sends — the first
    task, carrying the rest (last first) as signature dicts — built by
    Celery's own message factory (``amqp.as_task_v2``) and sent through its
    ``send_task_message``, without the canvas, router and option merging of
    ``send_task`` (0.94 → 0.53 ms per send here). Nothing stamps the sender's
    time limits on it: the worker applies those of the task it registered.
    ``parent``: the (task id, root id) of the task that made the steps ready,
    so Flower links a run's tasks as one tree.
    """
    amqp = celery_app.amqp
    # On Redis a queue needs no declaring to be published to (the message goes
    # straight onto its list); a broker that routes (AMQP) declares it, once
    # per connection, as kombu caches it.
    declare: list[Any] | None = [] if celery_app.conf.broker_url.startswith("redis") else None

    def publish(name: str, queue: str, args: tuple[str, ...], chain: list[dict[str, Any]] | None,
                parent: tuple[str, str] | None) -> None:
        task_id = str(uuid.uuid4())
        message = amqp.as_task_v2(
            task_id, name, args, {}, chain=chain,
            argsrepr=repr(args), kwargsrepr="{}",
            parent_id=parent[0] if parent else None,
            root_id=parent[1] if parent else None,
            ignore_result=True,
        )
        with celery_app.producer_or_acquire() as producer:
            amqp.send_task_message(
                producer, name, message, queue=amqp.queues[queue], declare=declare
            )

    def link(name: str, args: tuple[str, ...]) -> dict[str, Any]:
        # what a frozen immutable signature serialises to
        return {"task": name, "args": list(args), "kwargs": {}, "options": {"queue": step_queue(name)},
                "subtask_type": None, "immutable": True}

    def dispatch(
        run_id: uuid.UUID, workflow: str, steps: Sequence[str],
        parent: tuple[str, str] | None = None,
    ) -> None:
        definition = registry.code(workflow)
        if definition is None and registry.is_stored(workflow):
            # a designed workflow: every step through the one designed task, one message each
            for step in steps:
                publish(DESIGNED_TASK, DESIGNED_QUEUE, (str(run_id), step), None, parent)
            return
        args = (str(run_id),)
        for step in steps:
            names = definition.continuation(step) if definition is not None else [step]
            first = f"{workflow}.{names[0]}"
            rest = [link(f"{workflow}.{name}", args) for name in reversed(names[1:])]
            publish(first, step_queue(first), args, rest or None, parent)

    return dispatch
