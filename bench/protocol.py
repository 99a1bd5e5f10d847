"""The step protocol's database cost alone, in-process: no Celery, no broker.

For 3-step runs recorded by ``manager.start``, each step is claimed and
checkpointed two ways, alternating in rounds on the same database:
``previous`` (before the change in docs/performance.md: a connection checkout
with pre-ping per transaction; BEGIN, ``SET LOCAL``, claim, COMMIT; then BEGIN,
checkpoint, COMMIT) and ``current`` (what ``workers/steps.py`` does now: one
checkout per step; claim and checkpoint as single autocommit statements).
Prints the median per step of each round and one JSON line.

    python -m bench.protocol [--smoke]
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from bench.harness import parse_args, report, table
from bench.services import scratch


def main() -> None:
    args = parse_args(__doc__ or "")
    rounds, runs = (1, 5) if args.smoke else (3, 150)
    with scratch():
        from app.engine import checkpoints
        from app.runtime import build_manager
        from app.settings import get_settings

        manager = build_manager(get_settings(), dispatch=None)
        engine = manager.engine
        previous_claim = sa.text(
            checkpoints._CLAIM.text.replace("SET LOCAL synchronous_commit = off;", "")
        ).bindparams(sa.bindparam("run_id", type_=sa.Uuid))
        params = {"owner": "bench", "lease": 60, "slack": 1, "limit": 3}

        def previous(run_id: uuid.UUID, position: int, last: bool) -> None:
            with engine.begin() as c:
                c.exec_driver_sql("SET LOCAL synchronous_commit = off")
                c.execute(previous_claim, {"run_id": run_id, "position": position, **params})
            with engine.begin() as c:
                checkpoints.checkpoint(c, run_id, position, "x", "bench", None, last=last)

        def current(run_id: uuid.UUID, position: int, last: bool) -> None:
            with engine.connect() as c:
                dbapi = c.connection.dbapi_connection
                assert dbapi is not None
                dbapi.autocommit = True
                try:
                    checkpoints.claim(c, run_id, position, "bench", 60, recovery_limit=3)
                    c.commit()
                    checkpoints.checkpoint(c, run_id, position, "x", "bench", None, last=last)
                    c.commit()
                finally:
                    dbapi.autocommit = False

        variants: dict[str, Callable[[uuid.UUID, int, bool], None]] = {
            "previous": previous,
            "current": current,
        }
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
        "ratio_current_to_previous": round(
            statistics.median(medians["current"]) / statistics.median(medians["previous"]), 3
        ),
    }
    rows = [[name, *values] for name, values in medians.items()]
    header = ["variant", *(f"round {i + 1} ms/step" for i in range(rounds))]
    report(table("claim + checkpoint per step, in-process", header, rows), result)


if __name__ == "__main__":
    main()
