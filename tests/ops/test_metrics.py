"""``GET /metrics`` after real runs on a real worker: counters and gauges read from Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.runtime import build_manager
from app.settings import get_settings
from tests.e2e.conftest import wait_status
from tests.ops.conftest import gate_id, open_gate, wait_arrived


@pytest.fixture(scope="module")
def client(database: str):  # type: ignore[no-untyped-def]
    return create_app().test_client()


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before, after, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_count_started_finished_retried_runs_and_current_statuses(
    client, manager, ops_worker
):
    before = scrape(client)
    assert value(before, "stepwise_metrics_database_up") == 1

    email = f"m-{uuid.uuid4().hex[:8]}@example.com"
    signups = [
        manager.start("signup", {"email": email, "name": "M", "plan": "free"}).run["id"],
        manager.start(
            "signup", {"email": f"n-{uuid.uuid4().hex[:8]}@example.com", "name": "N", "plan": "pro"}
        ).run["id"],
    ]
    first = wait_status(manager, signups[0], "succeeded", "failed")
    assert first["status"] == "succeeded"
    again = {"email": email, "name": "M again", "plan": "free"}
    duplicate = manager.start("signup", again).run["id"]
    flaky = manager.start("flaky", {"fail_times": 1}).run["id"]
    expected_ends = ((signups[1], "succeeded"), (duplicate, "failed"), (flaky, "succeeded"))
    for run_id, expected in expected_ends:
        assert wait_status(manager, run_id, "succeeded", "failed")["status"] == expected

    gate = gate_id()
    blocked = manager.start("gated", {"gate": gate}).run["id"]
    wait_arrived(gate, blocked)
    # no dispatcher: this run stays pending (as if the broker had been down at start)
    stranded = build_manager(get_settings(), dispatch=None).start("flaky", {}).run
    try:
        after = scrape(client)
        assert delta(before, after, "stepwise_runs_started_total", workflow="signup") == 3
        assert delta(before, after, "stepwise_runs_started_total", workflow="flaky") == 2
        assert delta(before, after, "stepwise_runs_started_total", workflow="gated") == 1
        assert delta(before, after, "stepwise_runs_finished_total",
                     workflow="signup", status="succeeded") == 2
        assert delta(before, after, "stepwise_runs_finished_total",
                     workflow="signup", status="failed") == 1
        assert delta(before, after, "stepwise_runs_finished_total",
                     workflow="flaky", status="succeeded") == 1
        assert delta(before, after, "stepwise_step_retries_total",
                     workflow="flaky", step="call_api") == 1
        assert delta(before, after, "stepwise_step_duration_seconds_count",
                     workflow="signup", step="create_user", status="succeeded") == 2
        assert delta(before, after, "stepwise_step_duration_seconds_count",
                     workflow="signup", step="create_user", status="failed") == 1
        assert delta(before, after, "stepwise_step_duration_seconds_bucket",
                     workflow="signup", step="send_welcome_email", status="succeeded",
                     le="+Inf") == 2
        assert delta(before, after, "stepwise_step_duration_seconds_sum",
                     workflow="flaky", step="call_api", status="succeeded") > 0

        counts = manager.counts_by_status()
        for status, n in counts.items():
            assert value(after, "stepwise_runs", status=status) == n
        assert delta(before, after, "stepwise_runs", status="running") == 1
        assert delta(before, after, "stepwise_runs", status="pending") == 1
        oldest = min(
            r["created_at"] for r in manager.list(status="pending", limit=500)[0]
        )
        expected_age = (datetime.now(UTC) - oldest).total_seconds()
        assert value(after, "stepwise_oldest_pending_run_age_seconds") == pytest.approx(
            expected_age, abs=2.0
        )
    finally:
        open_gate(gate)
        manager.cancel(stranded["id"])
    assert wait_status(manager, blocked, "succeeded", "failed")["status"] == "succeeded"
    final = scrape(client)
    assert delta(before, final, "stepwise_runs_finished_total",
                 workflow="gated", status="succeeded") == 1
    assert delta(before, final, "stepwise_runs_finished_total",
                 workflow="flaky", status="cancelled") == 1


def test_recovery_health_shows_the_sweeps_age_and_the_steps_it_has_yet_to_resend(
    client, manager, engine
):
    import sqlalchemy as sa

    from app.engine.models import steps

    # recorded, never sent (as if the broker lost it), and older than the grace period
    lost = build_manager(get_settings(), dispatch=None).start("flaky", {}).run["id"]
    with engine.begin() as c:
        c.execute(steps.update().where(steps.c.run_id == lost, steps.c.name == "prepare")
                  .values(dispatched_at=sa.func.now() - sa.text("interval '10 minutes'")))
    before = scrape(client)
    assert value(before, "stepwise_steps_awaiting_recovery", reason="lost") >= 1

    report = manager.recover()
    assert lost in report.resent
    after = scrape(client)
    assert 0 <= value(after, "stepwise_recovery_last_sweep_age_seconds") < 5
    assert value(after, "stepwise_recovery_last_sweep_duration_seconds") > 0
    # re-sent: its message is fresh again, so the sweep has nothing more to do for it
    # (nor for other tests' lost steps it re-sent in the same sweep)
    assert (value(after, "stepwise_steps_awaiting_recovery", reason="lost")
            < value(before, "stepwise_steps_awaiting_recovery", reason="lost"))
    if manager.get(lost)["status"] in ("pending", "running"):
        manager.cancel(lost)  # a worker of another test may already have run it
