"""Runs per status, cheap on a table of millions of rows.

No ``count(*)`` over the whole table on page loads. Each status is counted
with a cap — ``SELECT count(*) FROM (SELECT 1 ... WHERE status = s LIMIT cap)``,
an index-only scan of at most ``cap`` entries of ``ix_workflow_runs_status_created`` —
so a status with few runs (the ones an operator acts on: pending, running,
failed) is exact. A status over the cap is estimated from the planner's
statistics: ``pg_class.reltuples`` times the status's share in
``pg_stats.most_common_freqs`` (kept fresh by autovacuum's ANALYZE), and
shown as approximate. The result is cached per process for ``ttl`` seconds,
so pages that refresh themselves do not recount on every poll.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.engine.states import RunStatus

CAP = 10_000
TTL_SECONDS = 5.0

_CAPPED = sa.text(
    """
    SELECT s.status,
           (SELECT count(*) FROM (SELECT 1 FROM workflow_runs r
                                  WHERE r.status = s.status LIMIT :cap) AS capped) AS n
    FROM unnest(CAST(:statuses AS text[])) AS s(status)
    """
)
_ESTIMATE = sa.text(
    """
    SELECT c.reltuples::bigint AS total,
           CAST(CAST(st.most_common_vals AS text) AS text[]) AS vals,
           st.most_common_freqs AS freqs
    FROM pg_class c
    LEFT JOIN pg_stats st
      ON st.schemaname = current_schema() AND st.tablename = 'workflow_runs'
     AND st.attname = 'status'
    WHERE c.oid = to_regclass('workflow_runs')
    """
)


@dataclass(frozen=True)
class Count:
    value: int
    exact: bool
    at_least: bool = False  # over the cap and no statistics yet

    @property
    def label(self) -> str:
        if self.exact:
            return f"{self.value:,}"
        if self.at_least:
            return f"{self.value:,}+"
        return f"≈ {_short(self.value)}"


def _short(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1_000:
        return f"{n / 1_000:.0f}k"
    return str(n)


class StatusCounter:
    def __init__(self, engine: Engine, *, cap: int = CAP, ttl: float = TTL_SECONDS) -> None:
        self.engine = engine
        self.cap = cap
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Count]] | None = None

    def counts(self) -> dict[str, Count]:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl:
                return self._cached[1]
        fresh = self._count()
        with self._lock:
            self._cached = (time.monotonic(), fresh)
        return fresh

    def _count(self) -> dict[str, Count]:
        statuses = [s.value for s in RunStatus]
        with self.engine.connect() as c:
            capped = {
                row.status: int(row.n)
                for row in c.execute(_CAPPED, {"cap": self.cap, "statuses": statuses})
            }
            over = [s for s in statuses if capped[s] >= self.cap]
            estimates = self._estimates(c) if over else {}
        result = {}
        for status in statuses:
            if status in over:
                estimate = estimates.get(status, 0)
                result[status] = Count(
                    max(estimate, self.cap), exact=False, at_least=estimate < self.cap
                )
            else:
                result[status] = Count(capped[status], exact=True)
        return result

    def _estimates(self, c: sa.Connection) -> dict[str, int]:
        row = c.execute(_ESTIMATE).first()
        if row is None or row.total is None or row.total <= 0 or row.vals is None:
            return {}  # never analyzed: callers show the cap as a lower bound
        return {v: int(row.total * f) for v, f in zip(row.vals, row.freqs, strict=False)}
