"""POST /api/v1/workflows/bulk/retry and /bulk/cancel (DESIGN §12), with a real worker."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.api.conftest import assert_error
from tests.e2e.conftest import gate_id
from tests.support.polling import wait_for
from tests.support.workflows import executions, store

pytestmark = pytest.mark.usefixtures("worker")


def db_now(engine: sa.Engine) -> datetime:
    with engine.connect() as c:
        now: datetime = c.execute(sa.text("SELECT now()")).scalar_one()
    return now


def statuses(engine: sa.Engine, ids: list[str]) -> Counter[str]:
    with engine.connect() as c:
        rows = c.execute(
            sa.text("SELECT status, count(*) FROM workflow_runs WHERE id = ANY(:ids) GROUP BY 1"),
            {"ids": [uuid.UUID(i) for i in ids]},
        ).all()
    return Counter({status: n for status, n in rows})


def wait_all(engine: sa.Engine, ids: list[str], status: str, timeout: float = 120) -> None:
    wait_for(
        lambda: statuses(engine, ids)[status] == len(ids),
        timeout=timeout,
        interval=0.2,
        what=f"{len(ids)} runs to be {status}",
    )


def start(client: Any, name: str, payload: dict[str, Any]) -> str:
    response = client.post(f"/api/v1/workflows/{name}", json={"input": payload})
    assert response.status_code == 202, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def test_two_hundred_failed_runs_are_retried_by_one_call_and_then_finish(client, engine):
    gate = gate_id()
    since = db_now(engine)
    ids = [start(client, "fixable", {"gate": gate}) for _ in range(200)]
    wait_all(engine, ids, "failed")

    store().set(f"gate:{gate}", 1)  # the operator fixes the cause, then retries them all
    response = client.post(
        "/api/v1/workflows/bulk/retry",
        json={
            "name": "fixable",
            "status": "failed",
            "error_type": "NonRetryableError",
            "created_after": since.isoformat(),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"matched", "changed", "skipped"}
    assert body["matched"] == 200
    assert sorted(body["changed"]) == sorted(ids)
    assert body["skipped"] == []

    wait_all(engine, ids, "succeeded")
    # each resumed at its failed step: the step before it ran once, the failed one twice
    assert {executions(i, "setup") for i in ids} == {1}
    assert {executions(i, "needs_fix") for i in ids} == {2}
    assert {executions(i, "wrap_up") for i in ids} == {1}


def test_a_mixed_set_changes_what_it_can_and_gives_each_skip_its_reason(client, engine, manager):
    gate = gate_id()
    since = db_now(engine)
    failed = start(client, "flaky", {"fatal": True})
    succeeded = start(client, "flaky", {})
    running = start(client, "gated", {"gate": gate})
    wait_for(lambda: manager.get(failed)["status"] == "failed", what="the fatal run to fail")
    wait_for(lambda: manager.get(succeeded)["status"] == "succeeded", what="a run to succeed")
    wait_for(lambda: store().sismember(f"arrived:{gate}", running), what="the gated run to block")
    window = {"created_after": since.isoformat()}

    retried = client.post("/api/v1/workflows/bulk/retry", json=window).get_json()
    assert retried["matched"] == 3
    assert retried["changed"] == [failed]
    assert sorted((s["id"], s["reason"]) for s in retried["skipped"]) == sorted(
        [
            (succeeded, "cannot retry a run that is succeeded"),
            (running, "cannot retry a run that is running"),
        ]
    )

    wait_for(lambda: manager.get(failed)["status"] == "failed", what="the retried run to fail again")
    cancelled = client.post("/api/v1/workflows/bulk/cancel", json={**window, "name": "gated"}).get_json()
    assert cancelled == {"matched": 1, "changed": [running], "skipped": []}
    again = client.post("/api/v1/workflows/bulk/cancel", json=window).get_json()
    assert again["changed"] == []
    assert {s["reason"] for s in again["skipped"]} == {
        "cannot cancel a run that is failed",
        "cannot cancel a run that is succeeded",
        "cannot cancel a run that is cancelled",
    }
    store().set(f"gate:{gate}", 1)
    assert manager.get(running)["status"] == "cancelled"


def test_limit_takes_the_newest_matching_runs(client, engine):
    since = db_now(engine)
    ids = [start(client, "flaky", {"fatal": True}) for _ in range(5)]
    wait_all(engine, ids, "failed")
    body = client.post(
        "/api/v1/workflows/bulk/retry",
        json={"created_after": since.isoformat(), "status": "failed", "limit": 2},
    ).get_json()
    assert body["matched"] == 2
    assert body["changed"] == list(reversed(ids))[:2]


def test_a_time_window_that_matches_nothing_changes_nothing(client, engine):
    future = db_now(engine) + timedelta(days=1)
    body = client.post("/api/v1/workflows/bulk/cancel", json={"created_after": future.isoformat()}).get_json()
    assert body == {"matched": 0, "changed": [], "skipped": []}


def test_bulk_is_not_read_as_a_run_id(client):
    assert_error(client.get("/api/v1/workflows/bulk"), 404, "run_not_found")
    assert_error(client.get("/api/v1/workflows/bulk/retry"), 405, "method_not_allowed")
    response = client.post("/api/v1/workflows/bulk/retry", json={"name": "no_such_workflow"})
    assert response.get_json() == {"matched": 0, "changed": [], "skipped": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "done"}, "status"),
        ({"status": "FAILED"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-01T00:00:00Z"}, "created_before"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"state": "failed"}, "state"),
        ({"id_prefix": "abcd1234"}, "id_prefix"),
        ({"name": ""}, "name"),
        ({"error_type": 7}, "error_type"),
        ({"error_type": "Boom\x00"}, "error_type"),
    ],
)
def test_a_bad_filter_is_422_naming_it(client, body, field):
    for action in ("retry", "cancel"):
        response = client.post(f"/api/v1/workflows/bulk/{action}", json=body)
        error = assert_error(response, 422, "invalid_input")
        assert set(error["details"]) == {field}, error


def test_a_body_that_is_not_a_json_object_is_refused(client):
    assert_error(
        client.post("/api/v1/workflows/bulk/retry", data="status=failed"),
        415,
        "unsupported_media_type",
    )
    assert_error(
        client.post("/api/v1/workflows/bulk/retry", data="{", content_type="application/json"),
        400,
        "malformed_json",
    )
    assert client.post("/api/v1/workflows/bulk/retry", json=["failed"]).status_code == 422
