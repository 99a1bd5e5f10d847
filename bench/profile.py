"""Where a worker spends a step: py-spy samples the worker while 3-step no-op runs go through.

Two loads:

- ``--load sequential`` (default): one run at a time, one pool child sampled
  with ``--idle``, so waits on Postgres and Redis show as wall time.
- ``--load throughput``: ``--in-flight`` runs kept in flight (the queue never
  empties), the whole worker sampled (main process and pool children,
  ``--subprocesses``), only threads holding the GIL: where the worker's **CPU** goes
  when it is the bottleneck, as in ``bench.compare``'s throughput phase.

    python -m bench.profile [--side stepwise|plain] [--load sequential|throughput]
        [--seconds 15] [--loglevel INFO] [--pool prefork] [--out var/bench/x.txt]

Prints the share of samples under frames of interest (a sample may count in
several: they nest) and the share by library of the innermost frame (these
add up to 100 %); the raw collapsed stacks go to ``--out`` for flame graphs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.harness import VENV_BIN, Worker
from bench.services import ROOT, scratch

# label -> substrings of a frame ("function (path:line)"); a sample counts if any matches
MARKERS: dict[str, tuple[str, ...]] = {
    "step protocol (execute_step, all of it)": ("execute_step (app/engine/protocol.py",),
    "claim (statement, lease, input + outputs read)": ("claim (app/engine/transitions.py",),
    "checkpoint": ("succeed (app/engine/transitions.py",),
    "the step function itself": ("bench/workflows.py",),
    "SQLAlchemy, all": ("sqlalchemy/",),
    "  statement compile / cache key": ("sqlalchemy/sql/compiler.py", "sqlalchemy/sql/cache_key.py"),
    "  result rows / type processing": ("sqlalchemy/engine/result.py", "sqlalchemy/engine/cursor.py",
                                        "sqlalchemy/sql/sqltypes.py"),
    "  psycopg2 execute (round trip)": ("do_execute (sqlalchemy/engine/default.py",),
    "  connection checkout / return": ("sqlalchemy/pool/",),
    "JSON encode / decode": ("json/", "kombu/utils/json.py"),
    "logging (structlog + stdlib)": ("structlog/", "logging/__init__.py"),
    "Celery task tracing (trace.py)": ("celery/app/trace.py",),
    "task events (-E)": ("celery/events/", "send_event", "task_sent_handler"),
    "publishing the next step": ("apply_async (",),
    "kombu / redis-py (messaging)": ("kombu/", "redis/"),
    "billiard (prefork pool IPC)": ("billiard/",),
}
LIBRARY = re.compile(r"\(([^/:]+)[^:]*:\d+\)$")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", choices=("stepwise", "plain"), default="stepwise")
    parser.add_argument("--load", choices=("sequential", "throughput"), default="sequential")
    parser.add_argument("--in-flight", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "profile.txt"))
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sequential = args.load == "sequential"
    with scratch(LOG_LEVEL=args.loglevel.lower()) as s, Worker(
        s.env, concurrency=1 if sequential else 2, loglevel=args.loglevel, pool=args.pool
    ) as worker:
        import redis
        from celery import chain

        from app.runtime import get_manager
        from bench.workflows import DONE_KEY, PLAIN_TASKS
        from workers.celery_app import app

        manager = get_manager()
        r = redis.Redis.from_url(s.redis_url)
        assert worker.proc is not None
        stop = threading.Event()
        runs = 0

        def start_one() -> None:
            if args.side == "stepwise":
                manager.start("bench_noop", {})
            else:
                rid = str(uuid.uuid4())
                chain(*(app.signature(t, args=(rid,), immutable=True) for t in PLAIN_TASKS)).apply_async()

        def drive() -> None:
            nonlocal runs
            for _ in range(1 if sequential else args.in_flight):
                start_one()
            while not stop.is_set():
                if r.blpop([DONE_KEY], timeout=30) is None:
                    break
                runs += 1
                start_one()

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        time.sleep(2)
        if sequential:
            child = subprocess.run(
                ["pgrep", "-P", str(worker.proc.pid)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
            target = ["--pid", child, "--idle"]
        else:
            # only threads holding the GIL: Python actually running, not waiting on a
            # socket, nor runnable but descheduled on a shared machine
            target = ["--pid", str(worker.proc.pid), "--subprocesses", "--gil"]
        runs_before = runs
        subprocess.run(
            [str(VENV_BIN / "py-spy"), "record", *target, "--rate", "250", "--format", "raw",
             "--duration", str(int(args.seconds)), "--output", str(out), "--nonblocking"],
            check=True,
            capture_output=True,
        )
        sampled_runs = runs - runs_before
        stop.set()
        driver.join(35)
    summarize(out, sampled_runs, args)


def summarize(path: Path, runs: int, args: argparse.Namespace) -> None:
    counts: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        samples = int(n)
        total += samples
        for label, markers in MARKERS.items():
            if any(m in stack for m in markers):
                counts[label] += samples
        leaf = stack.rpartition(";")[2]
        match = LIBRARY.search(leaf)
        libraries[match.group(1) if match else leaf[:40]] += samples
    what = "pool child, idle included" if args.load == "sequential" else "whole worker, GIL held"
    print(f"{args.side}, {args.load} load, log level {args.loglevel}, pool {args.pool}: "
          f"{runs} runs in {args.seconds:g} s; {total} samples ({what})")
    for label in MARKERS:
        print(f"  {label:48s} {100 * counts[label] / max(total, 1):5.1f} %")
    print("  by library of the innermost frame:")
    for name, samples in libraries.most_common(12):
        print(f"    {name:46s} {100 * samples / max(total, 1):5.1f} %")


if __name__ == "__main__":
    main()
