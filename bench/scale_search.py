"""The operator's console queries for ``bench.scale``: search, the new filters,
counts within a workflow and the bulk action's match, at the scale's size.

Kept apart from ``bench.scale`` so that its other query families can grow
without touching these. ``search_queries`` returns labelled calls, each the
code path the API or the dashboard runs; the scale bench times and EXPLAINs
them like its own.

The generated runs (``bench.scale.GENERATE_RUNS``) carry ``idempotency_key``
``key-<i>`` on every other run, an ``input`` of ``{"n", "email", "plan"}`` and,
when failed, one of three error types.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

SAMPLE = """
SELECT id, created_at, input->>'email' AS email, idempotency_key
FROM workflow_runs TABLESAMPLE BERNOULLI (1) WHERE idempotency_key IS NOT NULL LIMIT 500
"""


def search_queries(manager: Any, rng: random.Random) -> dict[str, Callable[[], Any]]:
    from app.dashboard.counts import StatusCounter
    from app.engine.queries import RunFilter, matching_ids

    engine = manager.engine
    with engine.connect() as c:
        picked = c.execute(sa.text(SAMPLE)).all()
    counter = StatusCounter(engine, ttl=0.0)  # no cache: every call counts

    def one() -> Any:
        return rng.choice(picked)

    def listed(make: Callable[[], RunFilter]) -> Callable[[], Any]:
        return lambda: manager.list(limit=50, filters=make())

    def bulk_match() -> list[Any]:
        with engine.connect() as c:
            return matching_ids(c, RunFilter(name="order", status="failed"), 1000)

    def window() -> RunFilter:
        at = one().created_at
        return RunFilter(created_after=at - timedelta(hours=1), created_before=at)

    return {
        "search id prefix (8 chars)": listed(lambda: RunFilter(id_prefix=str(one().id)[:8])),
        "search box (short id or key)": listed(lambda: RunFilter(search=str(one().id)[:8])),
        "search idempotency key": listed(lambda: RunFilter(idempotency_key=one().idempotency_key)),
        "search input.email": listed(lambda: RunFilter(input_fields=(("email", one().email),))),
        "search input.plan=pro (40 %)": listed(lambda: RunFilter(input_fields=(("plan", "pro"),))),
        "filter error_type": listed(lambda: RunFilter(error_type="Timeout")),
        "filter error_type+status": listed(
            lambda: RunFilter(error_type="Timeout", status="failed", name="invoice")
        ),
        "filter created 1 h window": listed(window),
        "counts within name=order": lambda: counter.counts(RunFilter(name="order")),
        "bulk match failed order ≤1000": bulk_match,
    }
