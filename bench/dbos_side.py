"""The DBOS side of ``bench.compare``: the same no-op workflows in DBOS 3.4.

Runs under ``bench/.dbos-venv/bin/python`` (DBOS is never a project
dependency), so it imports nothing from the project: only the standard library,
DBOS, and the SQLAlchemy that DBOS brings. DBOS runs in its best single-process
mode: workflows execute in this process's thread pool, started with
``DBOS.start_workflow`` (which returns once the workflow is durably recorded),
against its own scratch Postgres database given by the parent.

The parent drives it over stdin/stdout, one JSON object per line, so that it
can read this process's CPU time from /proc around each phase and nothing
else (start-up, migrations) is counted. Replies are the lines starting with
``BENCH ``; anything else on stdout is DBOS's own logging.

    {"cmd": "throughput", "n": 1000, "steps": 3}   -> {"seconds": ..., "start_ms": ...}
    {"cmd": "latency", "runs": 100, "steps": 3}    -> {"seconds": [...], "start_s": [...]}
    {"cmd": "count", "runs": 20, "steps": 3}       -> {"statements": ...}
    {"cmd": "quit"}
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig


@DBOS.step()
def one() -> None:
    return None


@DBOS.step()
def two() -> None:
    return None


@DBOS.step()
def three() -> None:
    return None


@DBOS.workflow()
def noop3() -> None:
    one()
    two()
    three()


@DBOS.workflow()
def noop1() -> None:
    one()


WORKFLOWS = {1: noop1, 3: noop3}


class Statements:
    """Statements sent through SQLAlchemy while ``on`` (DBOS's system database)."""

    def __init__(self) -> None:
        self.on = False
        self.count = 0
        sa.event.listen(sa.Engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        if self.on:
            self.count += 1


def throughput(n: int, steps: int) -> dict[str, Any]:
    workflow = WORKFLOWS[steps]
    t0 = time.perf_counter()
    handles = [DBOS.start_workflow(workflow) for _ in range(n)]
    started = time.perf_counter()
    for handle in handles:
        handle.get_result()
    done = time.perf_counter()
    return {"seconds": done - t0, "start_ms": (started - t0) * 1000 / n}


def latency(runs: int, steps: int) -> dict[str, Any]:
    workflow = WORKFLOWS[steps]
    seconds, start_s = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        handle = DBOS.start_workflow(workflow)
        t1 = time.perf_counter()
        handle.get_result()
        seconds.append(time.perf_counter() - t0)
        start_s.append(t1 - t0)
    return {"seconds": seconds, "start_s": start_s}


def main() -> None:
    url = sys.argv[1]
    config: DBOSConfig = {
        "name": "stepwise-bench",
        "system_database_url": url,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    statements = Statements()
    reply({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        cmd = command["cmd"]
        if cmd == "quit":
            break
        if cmd == "throughput":
            reply(throughput(command["n"], command["steps"]))
        elif cmd == "latency":
            reply(latency(command["runs"], command["steps"]))
        elif cmd == "count":
            statements.count, statements.on = 0, True
            latency(command["runs"], command["steps"])
            statements.on = False
            reply({"statements": statements.count})
        else:
            reply({"error": f"unknown command {cmd!r}"})
    DBOS.destroy()


def reply(value: dict[str, Any]) -> None:
    print("BENCH " + json.dumps(value), flush=True)


if __name__ == "__main__":
    main()
