"""A plain Celery chain with Celery's defaults: the baseline a Celery user starts from.

Nothing of the project is imported or configured here: no late acks, the
default prefetch (4 per process), events off, no result backend (Celery's
default is none). Only the broker URL is given (``BENCH_DEFAULTS_BROKER_URL``, its
own Redis database number). The last task of a chain reports completion the same
way as ``bench.workflows`` does, a ``task_postrun`` hook pushing onto a Redis
list, so every system pays the same small price for being watched.

    celery -A bench.plain_app worker --pool prefork --concurrency 2
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery, signals

DONE_KEY = "bench:done"
QUEUE = "bench_defaults"
CHAINS = {
    1: ("defaults.only",),
    3: ("defaults.one", "defaults.two", "defaults.three"),
}
LAST_TASKS = frozenset(names[-1] for names in CHAINS.values())

# its own variable, so a driver that also talks to the project's broker can import this
BROKER_URL = os.environ.get("BENCH_DEFAULTS_BROKER_URL") or os.environ.get(
    "CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"
)
app = Celery("bench_defaults", broker=BROKER_URL)
# CELERY_BROKER_URL in the environment wins over ``broker=``; a driver process
# that has it set for the project must still publish here
app.conf.broker_read_url = app.conf.broker_write_url = BROKER_URL
# The one setting changed: a queue of its own. The Redis server is shared, and a
# worker on the default "celery" queue of a database number that another session
# also uses (a lock lost in a flush) would eat that session's messages.
app.conf.task_default_queue = QUEUE


def _noop(run_id: str) -> None:
    return None


for _name in {name for names in CHAINS.values() for name in names}:
    app.task(name=_name)(_noop)

_clients: dict[int, redis.Redis] = {}


def _redis() -> redis.Redis:
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(BROKER_URL)
    return client


@signals.task_postrun.connect
def _report_done(task: Any = None, args: Any = None, **_: Any) -> None:
    if task is not None and task.name in LAST_TASKS and args:
        _redis().rpush(DONE_KEY, json.dumps({"id": str(args[0]), "t": time.time()}))


@signals.worker_ready.connect
def _announce_ready(sender: Any = None, **_: Any) -> None:
    """Tells ``bench.harness.Worker`` this worker consumes (it logs no "ready." below INFO)."""
    hostname = getattr(sender, "hostname", None)
    if hostname:
        _redis().set(f"bench:ready:{hostname}", 1, ex=3600)
