"""The step protocol's database cost alone, in-process: no Celery, no broker.

For 3-step runs recorded by ``manager.start``, each step is claimed and
checkpointed as ``app.engine.protocol`` does it: one checkout per step, the
claim and the checkpoint each a single autocommit statement (the run row
locked first, in the same query string). Prints the median per step of each
round and one JSON line.

    python -m bench.protocol [--smoke]
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

from bench.harness import parse_args, report, table
from bench.services import scratch


def main() -> None:
    args = parse_args(__doc__ or "")
    rounds, runs = (1, 5) if args.smoke else (3, 150)
    with scratch():
        from app.engine import transitions
        from app.runtime import build_manager
        from app.settings import get_settings

        manager = build_manager(get_settings(), dispatch=None)
        engine = manager.engine
        names = ["one", "two", "three"]

        def current(run_id: uuid.UUID, position: int, last: bool) -> None:
            with engine.connect() as c:
                dbapi = c.connection.dbapi_connection
                assert dbapi is not None
                dbapi.autocommit = True
                try:
                    transitions.claim(c, run_id, names[position], "bench", 60, recovery_limit=3)
                    c.commit()
                    transitions.succeed(c, run_id, names[position], "bench", None)
                    c.commit()
                finally:
                    dbapi.autocommit = False

        variants: dict[str, Callable[[uuid.UUID, int, bool], None]] = {"current": current}
        medians: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, step in variants.items():
                times = []
                for _ in range(runs):
                    run_id = manager.start("bench_noop", {}).run["id"]
                    for position in range(3):
                        t0 = time.perf_counter()
                        step(run_id, position, position == 2)
                        times.append(time.perf_counter() - t0)
                medians[name].append(round(statistics.median(times) * 1000, 3))

    result = {
        "bench": "protocol",
        "smoke": args.smoke,
        "median_ms_per_step_by_round": medians,
    }
    rows = [[name, *values] for name, values in medians.items()]
    header = ["variant", *(f"round {i + 1} ms/step" for i in range(rounds))]
    report(table("claim + checkpoint per step, in-process", header, rows), result)


if __name__ == "__main__":
    main()
