"""Where a worker spends a step: py-spy samples the pool child (idle time included,
so waits on Postgres and Redis show) while 3-step no-op runs go through one at a time.

    python -m bench.profile [--side stepwise|plain] [--seconds 15] [--out var/bench/x.txt]

Prints the share of samples under a few frames of interest; the collapsed stacks
are written to ``--out`` for flame graphs.
"""

from __future__ import annotations

import argparse
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from bench.harness import VENV_BIN, Worker
from bench.services import ROOT, scratch

MARKERS = {
    "execute_step (whole step protocol)": "execute_step (app/engine/protocol.py",
    "claim statement": "claim (app/engine/transitions.py",
    "checkpoint statement": "succeed (app/engine/transitions.py",
    "pool checkout (incl. pre-ping)": "_checkout (sqlalchemy/pool/base.py",
    "pre-ping": "_do_ping_w_event",
    "commit": "do_commit (",
    "structlog / logging": "structlog/",
    "task publish (next step)": "apply_async (",
    "message ack": "acknowledge (",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--side", choices=("stepwise", "plain"), default="stepwise")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "profile.txt"))
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with scratch() as s, Worker(s.env, concurrency=1) as worker:
        import redis
        from celery import chain

        from app.runtime import get_manager
        from bench.workflows import DONE_KEY, PLAIN_TASKS
        from workers.celery_app import app

        manager = get_manager()
        r = redis.Redis.from_url(s.redis_url)
        assert worker.proc is not None
        child = subprocess.run(
            ["pgrep", "-P", str(worker.proc.pid)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        stop = threading.Event()
        runs = 0

        def drive() -> None:
            nonlocal runs
            while not stop.is_set():
                if args.side == "stepwise":
                    manager.start("bench_noop", {})
                else:
                    rid = str(uuid.uuid4())
                    chain(
                        *(app.signature(t, args=(rid,), immutable=True) for t in PLAIN_TASKS)
                    ).apply_async()
                r.blpop([DONE_KEY], timeout=30)
                runs += 1

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        time.sleep(1)
        subprocess.run(
            [
                str(VENV_BIN / "py-spy"),
                "record",
                "--pid",
                child,
                "--idle",
                "--rate",
                "500",
                "--format",
                "raw",
                "--duration",
                str(int(args.seconds)),
                "--output",
                str(out),
                "--nonblocking",
            ],
            check=True,
            capture_output=True,
        )
        stop.set()
        driver.join(35)
    summarize(out, runs)


def summarize(path: Path, runs: int) -> None:
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        samples = int(n)
        total += samples
        for label, marker in MARKERS.items():
            if marker in stack:
                counts[label] += samples
    print(f"{runs} runs; {total} samples of the pool child (idle included)")
    for label in MARKERS:
        print(f"  {label:34s} {100 * counts[label] / max(total, 1):5.1f} %")


if __name__ == "__main__":
    main()
