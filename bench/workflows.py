"""What the benchmark workers run: 3-step and 1-step no-op workflows, the same
no-op steps as plain Celery tasks, and a workflow that hangs for the recovery benchmark.

Loaded by the worker through ``WORKFLOW_MODULES=...,bench.workflows``, so both
sides run in the same worker processes with the same settings. The last task of
either side reports completion the same way: a ``task_postrun`` hook (after the
step's checkpoint has committed) pushes the run id onto a Redis list.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
import sqlalchemy as sa
from celery import shared_task, signals
from marshmallow import Schema

from app.engine import StepContext, Workflow
from app.settings import get_settings

DONE_KEY = "bench:done"
ARRIVED_KEY = "bench:arrived"
SQL_KEY = "bench:sql"
PLAIN_TASKS = ("bench_plain.one", "bench_plain.two", "bench_plain.three")
PLAIN_SOLO = ("bench_plain.solo",)
LAST_TASKS = frozenset({
    "bench_noop.three", "bench_noop1.only", PLAIN_TASKS[-1], PLAIN_SOLO[0],
    "bench_line4.d", "bench_diamond.d", "bench_signal.after",
})


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


noop1 = Workflow("bench_noop1", input_schema=EmptyInput)


@noop1.step()
def only(ctx: StepContext) -> None:
    return None


# bench.primitives: four no-op steps in a line, the same four as a diamond
# (a → b, c → d: two branches and a join), and a wait for a signal between steps
def _noop(ctx: StepContext) -> None:
    return None


line4 = Workflow("bench_line4", input_schema=EmptyInput)
for _step in ("a", "b", "c", "d"):
    line4.step(name=_step)(_noop)

diamond = Workflow("bench_diamond", input_schema=EmptyInput)
diamond.step(name="a")(_noop)
diamond.step(name="b", after=["a"])(_noop)
diamond.step(name="c", after=["a"])(_noop)
diamond.step(name="d", after=["b", "c"])(_noop)

waiter = Workflow("bench_signal", input_schema=EmptyInput, signals=("go",))
waiter.step(name="before")(_noop)
waiter.wait_for_signal("wait_go", signal="go", timeout=7 * 86400)
waiter.step(name="after")(_noop)


def _plain(run_id: str) -> None:
    return None


for _name in (*PLAIN_TASKS, *PLAIN_SOLO):
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
    if _sql_counter.statements:
        # only in a worker started with STEPWISE_BENCH_COUNT_SQL=1 (bench.compare's count phase)
        _redis().incrby(SQL_KEY, _sql_counter.statements)
        _sql_counter.statements = 0
    if task is not None and task.name in LAST_TASKS and args:
        _redis().rpush(DONE_KEY, json.dumps({"id": str(args[0]), "t": time.time()}))


class SqlCounter:
    """Counts the statements SQLAlchemy sends (every engine of this process).

    pg_stat_statements is not loaded on the shared Postgres (it needs a restart),
    so statements are counted on the client side instead.
    """

    def __init__(self) -> None:
        self.statements = 0
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            sa.event.listen(sa.Engine, "before_cursor_execute", self._count)
            self.installed = True

    def _count(self, *_: Any) -> None:
        self.statements += 1


_sql_counter = SqlCounter()
if os.environ.get("STEPWISE_BENCH_COUNT_SQL") == "1":
    _sql_counter.install()


@signals.worker_process_init.connect
def _forget_clients(**_: Any) -> None:
    _clients.clear()


@signals.worker_ready.connect
def _announce_ready(sender: Any = None, **_: Any) -> None:
    """Tells ``bench.harness.Worker`` this worker consumes (it logs no "ready." below INFO)."""
    hostname = getattr(sender, "hostname", None)
    if hostname:
        _redis().set(f"bench:ready:{hostname}", 1, ex=3600)
