"""The systems ``bench.compare`` puts side by side, behind one small interface.

Each runs the same workload, a workflow of 1 or 3 no-op steps:

- ``celery defaults``: a plain Celery chain, ``bench.plain_app`` in a worker with
  Celery's defaults (prefork, 2 processes), on its own Redis database;
- ``celery project``: the same chain with the project's Celery settings
  (``bench.workflows``' plain tasks in the project's worker);
- ``stepwise``: ``manager.start`` of ``bench_noop`` / ``bench_noop1``, the steps
  run by the project's worker (``celery -A workers worker -E``);
- ``dbos``: DBOS 3.4 in its own virtualenv and process (``bench.dbos_side``).

A Celery run is finished when its last task's ``task_postrun`` hook has pushed
its id onto a Redis list (after the checkpoint, for Stepwise); the worker
stamps the time, so the driver's polling is not in the figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench import cpu
from bench.harness import Worker, wait_until


@dataclass
class Phase:
    """One throughput batch: wall seconds to the last completion, start cost, CPU by component."""

    seconds: float
    start_ms: float
    cpu_s: dict[str, float]


@dataclass
class Latencies:
    total_s: list[float] = field(default_factory=list)
    start_s: list[float] = field(default_factory=list)


class ChainSystem:
    """A system whose runs are started from this process and finished by a Celery worker."""

    def __init__(
        self,
        name: str,
        start: Callable[[int], str],
        done: redis.Redis,
        done_key: str,
        worker: Worker,
        postgres: cpu.PidSource | None = None,
    ):
        self.name = name
        self._start = start
        self._done = done
        self._done_key = done_key
        self.worker = worker
        self.postgres = postgres

    def components(self) -> dict[str, cpu.PidSource]:
        assert self.worker.proc is not None
        root = self.worker.proc.pid
        found: dict[str, cpu.PidSource] = {
            "client": lambda: [os.getpid()],
            "workers": lambda: cpu.process_tree(root),
        }
        if self.postgres is not None:
            found["postgres"] = self.postgres
        found["redis"] = lambda: cpu.pids_named("redis-server")
        return found

    def throughput(self, n: int, steps: int) -> Phase:
        self._done.delete(self._done_key)
        meter = cpu.Meter(self.components())
        meter.start()
        t0 = time.time()
        for _ in range(n):
            self._start(steps)
        started = time.time()
        wait_until(
            lambda: self._done.llen(self._done_key) >= n,
            timeout=900,
            what=f"{n} {self.name} runs",
            interval=0.05,
        )
        spent = meter.stop()
        last = max(json.loads(x)["t"] for x in self._done.lrange(self._done_key, 0, -1))
        return Phase(last - t0, (started - t0) * 1000 / n, spent)

    def latency(self, runs: int, steps: int) -> Latencies:
        self._done.delete(self._done_key)
        out = Latencies()
        for _ in range(runs):
            t0 = time.perf_counter()
            run_id = self._start(steps)
            t1 = time.perf_counter()
            item = self._done.blpop([self._done_key], timeout=60)
            t2 = time.perf_counter()
            if item is None:
                raise TimeoutError(f"a {self.name} run did not finish within 60 s")
            got = json.loads(item[1])["id"]
            if got != run_id:
                raise RuntimeError(f"{self.name}: finished {got}, expected {run_id}")
            out.total_s.append(t2 - t0)
            out.start_s.append(t1 - t0)
        return out


def chain_starter(celery_app: Any, tasks: dict[int, tuple[str, ...]]) -> Callable[[int], str]:
    """Start a plain chain of immutable run-id-only signatures, as Stepwise sends them."""
    from celery import chain

    def start(steps: int) -> str:
        run_id = str(uuid.uuid4())
        # the chain is bound to ``celery_app``: its broker, not the current app's
        chain(
            *(celery_app.signature(t, args=(run_id,), immutable=True) for t in tasks[steps]),
            app=celery_app,
        ).apply_async()
        return run_id

    return start


def stepwise_starter(manager: Any, workflows: dict[int, str]) -> Callable[[int], str]:
    def start(steps: int) -> str:
        return str(manager.start(workflows[steps], {}).run["id"])

    return start


class DbosSystem:
    """DBOS in its own process, driven over a pipe (see ``bench.dbos_side``)."""

    name = "dbos"

    def __init__(self, python: Path, database_url: str, postgres: cpu.PidSource):
        self.postgres = postgres
        script = Path(__file__).with_name("dbos_side.py")
        # DBOS speaks plain libpq URLs and picks its own driver (psycopg 3)
        url = database_url.replace("postgresql+psycopg2://", "postgresql://")
        self.proc = subprocess.Popen(
            [str(python), str(script), url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reply(timeout_hint="DBOS launch")

    def _reply(self, timeout_hint: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("BENCH "):
                value: dict[str, Any] = json.loads(line[6:])
                if "error" in value:
                    raise RuntimeError(f"dbos side: {value['error']}")
                return value
        raise RuntimeError(f"the DBOS process exited during {timeout_hint} (rc {self.proc.wait()})")

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout_hint=command["cmd"])

    def components(self) -> dict[str, cpu.PidSource]:
        # one process is both the client and the worker
        return {"workers": lambda: [self.proc.pid], "postgres": self.postgres}

    def throughput(self, n: int, steps: int) -> Phase:
        meter = cpu.Meter(self.components())
        meter.start()
        answer = self.ask(cmd="throughput", n=n, steps=steps)
        return Phase(answer["seconds"], answer["start_ms"], meter.stop())

    def latency(self, runs: int, steps: int) -> Latencies:
        answer = self.ask(cmd="latency", runs=runs, steps=steps)
        return Latencies(answer["seconds"], answer["start_s"])

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"cmd": "quit"}\n')
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
