"""Issue 12, items 12 and 13: /metrics counters count transitions as they commit.

No worker here: runs are started without being sent and moved by SQL, as any
code path (worker, sweep, CLI, an operator in psql) would move them; the
triggers of migration 0005 count them whichever path it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.metrics import COUNTERS, OLDEST_PENDING
from app.runtime import build_manager
from app.settings import get_settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# what Prometheus 3 sends (scrape_protocols' default order)
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.fixture(scope="module")
def client(database: str):  # type: ignore[no-untyped-def]
    return create_app().test_client()


@pytest.fixture(scope="module")
def quiet(database: str):  # type: ignore[no-untyped-def]
    """A manager that records runs and sends nothing."""
    return build_manager(get_settings(), dispatch=None)


@pytest.fixture
def runs(quiet, engine) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    started: list[str] = []
    yield started
    with engine.begin() as c:
        c.execute(
            sa.text("UPDATE workflow_runs SET status = 'cancelled' WHERE id = ANY(:ids) "
                    "AND status IN ('pending', 'running')"),
            {"ids": [uuid.UUID(r) for r in started]},
        )


def scrape(client) -> Samples:  # type: ignore[no-untyped-def]
    response = client.get("/metrics")
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def finished(samples: Samples, workflow: str, status: str) -> float:
    return value(samples, "stepwise_runs_finished_total", workflow=workflow, status=status)


def start(quiet, runs: list[str]) -> str:  # type: ignore[no-untyped-def]
    run_id = str(quiet.start("flaky", {"fail_times": 0}).run["id"])
    runs.append(run_id)
    return run_id


def move(engine: sa.Engine, run_id: str, status: str, **extra: str) -> None:
    sets = ", ".join([f"status = '{status}'", *(f"{k} = {v}" for k, v in extra.items())])
    with engine.begin() as c:
        c.execute(sa.text(f"UPDATE workflow_runs SET {sets} WHERE id = :id"), {"id": run_id})


def fail(engine: sa.Engine, run_id: str) -> None:
    move(engine, run_id, "running")
    move(engine, run_id, "failed", finished_at="now()")


def test_retrying_a_failed_run_never_takes_the_finished_counter_down(
    client, quiet, engine, runs
):
    """The reported bug: a retry un-counted the failure (12 → 11), a counter reset to Prometheus."""
    before = scrape(client)
    run_id = start(quiet, runs)
    fail(engine, run_id)
    failed_once = scrape(client)
    assert finished(failed_once, "flaky", "failed") == finished(before, "flaky", "failed") + 1

    quiet.retry(run_id)  # failed → pending: the run's row no longer says "failed"
    retried = scrape(client)
    assert finished(retried, "flaky", "failed") == finished(failed_once, "flaky", "failed")

    fail(engine, run_id)  # it fails again: a second finish, counted
    again = scrape(client)
    assert finished(again, "flaky", "failed") == finished(before, "flaky", "failed") + 2
    started = "stepwise_runs_started_total"
    assert value(again, started, workflow="flaky") == value(before, started, workflow="flaky") + 1


def test_counters_survive_the_cleanup_and_the_gauge_follows_it(client, quiet, engine, runs):
    run_ids = [start(quiet, runs) for _ in range(3)]
    for run_id in run_ids:
        move(engine, run_id, "running")
        move(engine, run_id, "succeeded", finished_at="now() - interval '30 days'")
    before = scrape(client)
    deleted = quiet.cleanup(20 * 86400)  # only runs finished over 20 days ago: these
    assert deleted == 3
    after = scrape(client)
    assert finished(after, "flaky", "succeeded") == finished(before, "flaky", "succeeded")
    started = "stepwise_runs_started_total"
    assert value(after, started, workflow="flaky") == value(before, started, workflow="flaky")
    gauge = "stepwise_runs"
    assert value(after, gauge, status="succeeded") == value(before, gauge, status="succeeded") - 3
    runs.clear()


def test_the_runs_by_status_gauge_equals_a_count_of_the_rows(client, quiet, engine, runs):
    for i in range(6):
        run_id = start(quiet, runs)
        if i % 3:
            move(engine, run_id, "running")
        if i % 3 == 2:
            move(engine, run_id, "cancelled", finished_at="now()")
    samples = scrape(client)
    for status, n in quiet.counts_by_status().items():
        assert value(samples, "stepwise_runs", status=status) == n, status


def test_a_step_retry_and_its_duration_are_counted_once_each(client, quiet, engine, runs):
    run_id = start(quiet, runs)
    labels = {"workflow": "flaky", "step": "call_api"}
    before = scrape(client)
    with engine.begin() as c:
        def step(sets: str) -> None:
            c.execute(
                sa.text(f"UPDATE workflow_steps SET {sets} WHERE run_id = :id AND position = 1"),
                {"id": run_id},
            )

        step("status = 'running', attempts = 1, started_at = now()")
        step("status = 'retrying'")
        step("status = 'running', attempts = 2, started_at = now()")
        step("attempts = 2")  # not a status change: counts nothing
        step("status = 'succeeded', finished_at = started_at + interval '300 milliseconds'")
    after = scrape(client)

    def grew(name: str, **extra: str) -> float:
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    assert grew("stepwise_step_retries_total") == 1
    duration = "stepwise_step_duration_seconds"
    assert grew(f"{duration}_count", status="succeeded") == 1
    assert grew(f"{duration}_sum", status="succeeded") == pytest.approx(0.3)
    assert grew(f"{duration}_bucket", status="succeeded", le="0.25") == 0
    assert grew(f"{duration}_bucket", status="succeeded", le="0.5") == 1
    assert grew(f"{duration}_bucket", status="succeeded", le="+Inf") == 1


def test_metrics_content_type_has_one_charset_and_the_body_parses(client):
    response = client.get("/metrics")
    assert response.headers["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {f.name for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {"stepwise_runs_started", "stepwise_runs", "stepwise_step_duration_seconds"} <= names


def test_prometheus_3_gets_openmetrics_it_can_parse(client):
    response = client.get("/metrics", headers={"Accept": PROMETHEUS_3_ACCEPT})
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("application/openmetrics-text; version=1.0.0;")
    assert content_type.count("charset") == 1
    families = list(openmetrics_families(response.get_data(as_text=True)))
    assert "stepwise_runs_finished" in {f.name for f in families}


def buffers(engine: sa.Engine, query: sa.TextClause) -> tuple[int, str]:
    """Pages one scrape query touches, and its plan (EXPLAIN ANALYZE, BUFFERS)."""
    with engine.connect() as c:
        plan = "\n".join(
            c.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) {query.text}")).scalars()
        )
    top = next(line for line in plan.splitlines() if "Buffers:" in line)
    pages = sum(int(n) for n in __import__("re").findall(r"(?:hit|read)=(\d+)", top))
    return pages, plan


def test_a_scrape_reads_the_same_pages_with_20000_more_runs(client, engine):
    """The scrape's cost follows label sets, not runs (bench/metrics_scrape.py times it)."""
    scrape(client)  # fold what earlier tests left per backend
    small = {name: buffers(engine, q) for name, q in (("counters", COUNTERS),
                                                      ("oldest", OLDEST_PENDING))}
    with engine.begin() as c:
        ids = c.execute(sa.text(
            "INSERT INTO workflow_runs (id, name, status, input, created_at, updated_at, "
            "finished_at) SELECT gen_random_uuid(), 'flaky', "
            "CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'succeeded' END, '{}', "
            "now() - interval '1 hour', now(), now() FROM generate_series(1, 20000) AS i "
            "RETURNING id")).scalars().all()
        c.exec_driver_sql("ANALYZE workflow_runs")
    try:
        scrape(client)
        big = {name: buffers(engine, q) for name, q in (("counters", COUNTERS),
                                                        ("oldest", OLDEST_PENDING))}
        for name in small:
            assert big[name][0] <= small[name][0] + 3, (name, big[name][1])
        assert "workflow_runs" not in big["counters"][1]
        assert "ix_workflow_runs_status_created" in big["oldest"][1]
        assert "Seq Scan on workflow_runs" not in big["oldest"][1]
    finally:
        with engine.begin() as c:
            c.execute(sa.text("DELETE FROM workflow_runs WHERE id = ANY(:ids)"), {"ids": ids})
