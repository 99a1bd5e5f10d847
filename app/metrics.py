"""``GET /metrics``: workflow figures for Prometheus, read from Postgres at scrape time.

Postgres is the record of every run and step, so the figures are the same
whichever web process answers and however many workers (on however many
machines) did the work; nothing is counted in process memory.

Counters (started, finished, step durations, retries) cover the runs of the
current UTC day: they reset to zero at 00:00 UTC, which Prometheus's
``rate()``/``increase()`` treat as an ordinary counter reset. Counting within
a day keeps them monotonic although the clean-up deletes old runs (its
retention must be at least a day) and keeps each scrape to today's index range.
Gauges (runs by status, oldest pending age) are exact at the moment of the scrape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection, Engine

from app.engine.states import RunStatus

DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0
)
SCRAPE_TIMEOUT_MS = 5000

# runs created today, by workflow (ix_workflow_runs_created: a range scan)
_STARTED = sa.text(
    "SELECT name, count(*) FROM workflow_runs WHERE created_at >= :day GROUP BY name"
)
# runs finished today (the partial index ix_workflow_runs_finished)
_FINISHED = sa.text(
    """
    SELECT name, status, count(*) FROM workflow_runs
    WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at >= :day
    GROUP BY name, status
    """
)
# the steps of today's runs: today's runs by index, their steps by primary key
_STEPS = sa.text(
    f"""
    SELECT r.name AS workflow, s.name AS step, s.status,
           sum(greatest(s.attempts - 1, 0)) AS retries,
           count(*) FILTER (WHERE s.status IN ('succeeded', 'failed')
                              AND s.finished_at IS NOT NULL) AS finished,
           coalesce(sum(extract(epoch FROM s.finished_at - s.started_at))
                    FILTER (WHERE s.status IN ('succeeded', 'failed')), 0) AS seconds,
           {", ".join(
               f"count(*) FILTER (WHERE s.status IN ('succeeded', 'failed') AND "
               f"extract(epoch FROM s.finished_at - s.started_at) <= {b}) AS le_{i}"
               for i, b in enumerate(DURATION_BUCKETS)
           )}
    FROM workflow_runs r JOIN workflow_steps s ON s.run_id = r.id
    WHERE r.created_at >= :day
    GROUP BY r.name, s.name, s.status
    """
)
# one index-only count per status (ix_workflow_runs_status_created)
_BY_STATUS = sa.text(
    """
    SELECT st.status,
           (SELECT count(*) FROM workflow_runs r WHERE r.status = st.status) AS n
    FROM unnest(CAST(:statuses AS text[])) AS st(status)
    """
)
# the oldest pending run: the first entry of ('pending', created_at) in the index
_OLDEST_PENDING = sa.text(
    """
    SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
    FROM workflow_runs WHERE status = 'pending'
    """
)


class WorkflowCollector(Collector):
    """A prometheus-client collector that queries Postgres on each scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "stepwise_metrics_database_up", "1 if the scrape could read Postgres, else 0"
        )
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {SCRAPE_TIMEOUT_MS}")
                families = list(self._families(conn))
        except sa.exc.SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, conn: Connection) -> Iterator[Metric]:
        day = conn.execute(sa.text("SELECT date_trunc('day', now(), 'UTC')")).scalar_one()

        started = CounterMetricFamily(
            "stepwise_runs_started",
            "Runs started since 00:00 UTC, by workflow",
            labels=["workflow"],
        )
        for name, n in conn.execute(_STARTED, {"day": day}):
            started.add_metric([name], n)
        yield started

        finished = CounterMetricFamily(
            "stepwise_runs_finished",
            "Runs finished since 00:00 UTC, by workflow and final status",
            labels=["workflow", "status"],
        )
        for name, status, n in conn.execute(_FINISHED, {"day": day}):
            finished.add_metric([name, status], n)
        yield finished

        yield from self._step_families(conn.execute(_STEPS, {"day": day}).mappings().all())

        by_status = GaugeMetricFamily(
            "stepwise_runs", "Runs by current status", labels=["status"]
        )
        statuses = [s.value for s in RunStatus]
        for status, n in conn.execute(_BY_STATUS, {"statuses": statuses}):
            by_status.add_metric([status], n)
        yield by_status

        yield GaugeMetricFamily(
            "stepwise_oldest_pending_run_age_seconds",
            "Age of the oldest run still pending (0 when none)",
            value=float(conn.execute(_OLDEST_PENDING).scalar_one()),
        )

    def _step_families(self, rows: list[Any]) -> Iterator[Metric]:
        duration = HistogramMetricFamily(
            "stepwise_step_duration_seconds",
            "Duration of the last attempt of finished steps of today's runs",
            labels=["workflow", "step", "status"],
        )
        retries = CounterMetricFamily(
            "stepwise_step_retries",
            "Extra attempts of the steps of today's runs",
            labels=["workflow", "step"],
        )
        retry_totals: dict[tuple[str, str], int] = {}
        for row in rows:
            key = (row["workflow"], row["step"])
            retry_totals[key] = retry_totals.get(key, 0) + int(row["retries"] or 0)
            if row["finished"]:
                buckets = [
                    (str(b), int(row[f"le_{i}"])) for i, b in enumerate(DURATION_BUCKETS)
                ] + [("+Inf", int(row["finished"]))]
                duration.add_metric(
                    [row["workflow"], row["step"], row["status"]],
                    buckets,
                    sum_value=float(row["seconds"]),
                )
        for (workflow, step), n in sorted(retry_totals.items()):
            retries.add_metric([workflow, step], n)
        yield duration
        yield retries


blueprint = Blueprint("metrics", __name__)


def _registry() -> CollectorRegistry:
    registry = current_app.extensions.get("stepwise_metrics")
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(WorkflowCollector(current_app.extensions["stepwise_manager"].engine))
        current_app.extensions["stepwise_metrics"] = registry
    return registry  # type: ignore[no-any-return]


@blueprint.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)
