"""What the benchmark workers run: a 3-step no-op workflow, the same three no-op
steps as plain Celery tasks, and a workflow that hangs for the recovery benchmark.

Loaded by the worker through ``WORKFLOW_MODULES=...,bench.workflows``, so both
sides run in the same worker processes with the same settings. The last task of
either side reports completion the same way: a ``task_postrun`` hook (after the
step's checkpoint has committed) pushes the run id onto a Redis list.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from celery import shared_task, signals
from marshmallow import Schema

from app.engine import StepContext, Workflow
from app.settings import get_settings

DONE_KEY = "bench:done"
ARRIVED_KEY = "bench:arrived"
PLAIN_TASKS = ("bench_plain.one", "bench_plain.two", "bench_plain.three")
LAST_TASKS = frozenset({"bench_noop.three", PLAIN_TASKS[-1]})


class EmptyInput(Schema):
    pass


noop = Workflow("bench_noop", input_schema=EmptyInput)


@noop.step()
def one(ctx: StepContext) -> None:
    return None


@noop.step()
def two(ctx: StepContext) -> None:
    return None


@noop.step()
def three(ctx: StepContext) -> None:
    return None


def _plain(run_id: str) -> None:
    return None


for _name in PLAIN_TASKS:
    shared_task(name=_name, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(_plain)


hang = Workflow("bench_hang", input_schema=EmptyInput)


@hang.step()
def before(ctx: StepContext) -> None:
    return None


@hang.step()
def stuck(ctx: StepContext) -> None:
    """The first attempt hangs until the worker is killed; the recovered one passes."""
    if ctx.attempt == 1:
        _redis().sadd(ARRIVED_KEY, str(ctx.run_id))
        while True:
            time.sleep(0.05)


@hang.step()
def after(ctx: StepContext) -> None:
    return None


_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis:
    url = get_settings().celery_broker_url
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url)
    return client


@signals.task_postrun.connect
def _report_done(task: Any = None, args: Any = None, **_: Any) -> None:
    if task is not None and task.name in LAST_TASKS and args:
        _redis().rpush(DONE_KEY, json.dumps({"id": str(args[0]), "t": time.time()}))


@signals.worker_process_init.connect
def _forget_clients(**_: Any) -> None:
    _clients.clear()
