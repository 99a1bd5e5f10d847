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

Counts under a filter (a workflow, an error type, a time range, a search)
count the runs the list would show for each status, with the same cap,
through the filter's indexes (``ix_workflow_runs_name_status_created`` for a
workflow); the statistics say nothing about a filtered share, so a count
over the cap is shown as a lower bound ("10,000+").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.engine.queries import RunFilter, count_matching
from app.engine.states import RunStatus

CAP = 10_000
TTL_SECONDS = 5.0
CACHED_FILTERS = 64

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
        self._cached: dict[RunFilter | None, tuple[float, dict[str, Count]]] = {}

    def counts(self, filters: RunFilter | None = None) -> dict[str, Count]:
        """Runs per status; with ``filters`` (its status ignored), only those it matches."""
        key = None if filters is None or filters.without_status().empty else filters.without_status()
        with self._lock:
            hit = self._cached.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
        fresh = self._count() if key is None else self._count_filtered(key)
        with self._lock:
            if len(self._cached) >= CACHED_FILTERS:
                self._cached.clear()  # crude, and enough: entries live for seconds
            self._cached[key] = (time.monotonic(), fresh)
        return fresh

    def _count_filtered(self, filters: RunFilter) -> dict[str, Count]:
        result = {}
        with self.engine.connect() as c:
            for status in RunStatus:
                n = count_matching(c, replace(filters, status=status.value), self.cap)
                if n >= self.cap:
                    result[status.value] = Count(n, exact=False, at_least=True)
                else:
                    result[status.value] = Count(n, exact=True)
        return result

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
