"""``GET /metrics``: workflow figures for Prometheus, kept by Postgres as transitions commit.

Triggers on ``workflow_runs`` and ``workflow_steps`` (migration ``0005``) count
every transition in ``workflow_metric_counters`` in the same transaction that
makes it, whichever code path (API, worker, sweep, CLI, SQL by hand) made it.
So the counters are monotonic — a retried failed run does not un-count its
failure — they survive the clean-up deleting old runs, and they are the same
whichever web process answers. The gauge of runs by status is kept the same
way (+1/-1 on each change), so no scrape counts rows of ``workflow_runs``;
the oldest pending run is the first entry of an index. A scrape's cost
follows the number of label sets, not the number of runs (see
``bench/metrics_scrape.py`` and tests/ops/test_metrics_counters.py).

Each backend adds to its own counter rows (no hot row, no lock waits between
commits); a scrape sums them and folds the rows nobody holds into one row per
label set, so the table stays small.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection, Engine

from app.engine.recovery import RecoveryHealth, recovery_health
from app.engine.states import RunStatus

SCRAPE_TIMEOUT_MS = 5000
FOLD_LOCK_ID = 0x5173_6D65  # arbitrary, constant: "stepwise metrics fold"
COLUMNS = "metric, workflow, step, status, le"

# One scraper at a time moves every unlocked per-backend row into shard 0. SKIP
# LOCKED: a scrape never waits for a commit in flight, and a commit waits at most
# for this statement, which waits for nobody, so no deadlock can form.
FOLD = sa.text(
    f"""
    WITH moved AS (
        DELETE FROM workflow_metric_counters
        WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM workflow_metric_counters WHERE shard <> 0
            FOR UPDATE SKIP LOCKED))
        RETURNING {COLUMNS}, count, sum
    )
    INSERT INTO workflow_metric_counters AS m ({COLUMNS}, shard, count, sum)
    SELECT {COLUMNS}, 0, sum(count), sum(sum) FROM moved
    GROUP BY {COLUMNS} ORDER BY {COLUMNS}
    ON CONFLICT ({COLUMNS}, shard)
    DO UPDATE SET count = m.count + excluded.count, sum = m.sum + excluded.sum
    """
)
COUNTERS = sa.text(
    f"""
    SELECT {COLUMNS}, sum(count) AS count, sum(sum) AS sum
    FROM workflow_metric_counters GROUP BY {COLUMNS} ORDER BY {COLUMNS}
    """
)
BUCKETS = sa.text("SELECT stepwise_duration_buckets()")
# the first entry of ('pending', created_at) in ix_workflow_runs_status_created
OLDEST_PENDING = sa.text(
    """
    SELECT coalesce(extract(epoch FROM now() - (
        SELECT created_at FROM workflow_runs WHERE status = 'pending'
        ORDER BY created_at LIMIT 1)), 0)
    """
)


def fold(conn: Connection) -> None:
    """Fold the per-backend rows into shard 0, unless another scrape is doing it."""
    if conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(FOLD_LOCK_ID))).scalar_one():
        conn.execute(FOLD)


class WorkflowCollector(Collector):
    """A prometheus-client collector that reads the trigger-kept counters on each scrape."""

    def __init__(self, engine: Engine, recovery_grace: float = 30.0) -> None:
        self.engine = engine
        self.recovery_grace = recovery_grace

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "stepwise_metrics_database_up", "1 if the scrape could read Postgres, else 0"
        )
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {SCRAPE_TIMEOUT_MS}")
                fold(conn)
                families = list(self._families(conn))
        except sa.exc.SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, conn: Connection) -> Iterator[Metric]:
        rows: dict[str, list[Any]] = defaultdict(list)
        for row in conn.execute(COUNTERS):
            rows[row.metric].append(row)

        started = CounterMetricFamily(
            "stepwise_runs_started", "Runs started, by workflow", labels=["workflow"]
        )
        for row in rows["runs_started"]:
            started.add_metric([row.workflow], int(row.count))
        yield started

        finished = CounterMetricFamily(
            "stepwise_runs_finished",
            "Runs that reached succeeded, failed or cancelled, by workflow and that status "
            "(a retried run that ends again counts again)",
            labels=["workflow", "status"],
        )
        for row in rows["runs_finished"]:
            finished.add_metric([row.workflow, row.status], int(row.count))
        yield finished

        bounds = list(conn.execute(BUCKETS).scalar_one())
        yield histogram(rows["step_duration"], bounds)

        retries = CounterMetricFamily(
            "stepwise_step_retries",
            "Step attempts that failed and were scheduled again (entered retrying)",
            labels=["workflow", "step"],
        )
        for row in rows["step_retries"]:
            retries.add_metric([row.workflow, row.step], int(row.count))
        yield retries

        by_status = GaugeMetricFamily("stepwise_runs", "Runs by current status", labels=["status"])
        counts = {row.status: int(row.count) for row in rows["runs"]}
        for status in RunStatus:
            by_status.add_metric([status.value], counts.get(status.value, 0))
        yield by_status

        yield GaugeMetricFamily(
            "stepwise_oldest_pending_run_age_seconds",
            "Age of the oldest run still pending (0 when none)",
            value=float(conn.execute(OLDEST_PENDING).scalar_one()),
        )
        yield from recovery_families(recovery_health(conn, self.recovery_grace))


def recovery_families(health: RecoveryHealth) -> Iterator[Metric]:
    """Is recovery healthy: a recent sweep, and nothing left stuck for long."""
    yield GaugeMetricFamily(
        "stepwise_recovery_last_sweep_age_seconds",
        "Seconds since the last recovery sweep ended (+Inf if none ever did); "
        "alert when it is several WORKFLOW_RECOVERY_INTERVALs",
        value=float("inf") if health.last_sweep_age is None else health.last_sweep_age,
    )
    yield GaugeMetricFamily(
        "stepwise_recovery_last_sweep_duration_seconds",
        "How long the last recovery sweep took",
        value=health.last_sweep_seconds or 0.0,
    )
    awaiting = GaugeMetricFamily(
        "stepwise_steps_awaiting_recovery",
        "Steps of active runs the sweep would act on now (counted up to 10000 each): "
        "lease = its worker's lease ran out, retry = a due retry nobody sent, "
        "lost = a pending step whose message is older than the grace period",
        labels=["reason"],
    )
    for why in ("lease", "retry", "lost"):
        awaiting.add_metric([why], health.awaiting.get(why, 0))
    yield awaiting


def histogram(rows: list[Any], bounds: list[float]) -> HistogramMetricFamily:
    """Per-bucket counts (each observation in its smallest bucket) → cumulative buckets."""
    family = HistogramMetricFamily(
        "stepwise_step_duration_seconds",
        "Duration of step attempts that ended succeeded or failed",
        labels=["workflow", "step", "status"],
    )
    series: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for row in rows:
        series[(row.workflow, row.step, row.status)].append(row)
    for labels, observed in series.items():
        per_bound: dict[float, int] = defaultdict(int)
        for row in observed:
            per_bound[float(row.le)] += int(row.count)
        buckets, running = [], 0
        for bound in sorted({*bounds, *(b for b in per_bound if b != float("inf"))}):
            running += per_bound.get(bound, 0)
            buckets.append((str(bound), running))
        buckets.append(("+Inf", running + per_bound.get(float("inf"), 0)))
        family.add_metric(list(labels), buckets, sum_value=sum(float(r.sum) for r in observed))
    return family


blueprint = Blueprint("metrics", __name__)


def _registry() -> CollectorRegistry:
    registry = current_app.extensions.get("stepwise_metrics")
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        manager = current_app.extensions["stepwise_manager"]
        registry.register(WorkflowCollector(manager.engine, manager.recovery_grace))
        current_app.extensions["stepwise_metrics"] = registry
    return registry  # type: ignore[no-any-return]


@blueprint.get("/metrics")
def metrics() -> Response:
    """The format the scraper asks for (prometheus-client's own negotiation).

    The Content-Type is set whole: Flask's ``mimetype=`` would append a second
    ``charset``, which Prometheus 2 logs as a parse error and Prometheus 3 refuses.
    """
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encode(_registry()))
    response.headers["Content-Type"] = content_type
    return response
