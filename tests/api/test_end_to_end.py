"""Over real HTTP with a real worker: start → succeeded, fail → retry → succeeded, cancel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import signup_input
from tests.api.servers import serve_in_thread
from tests.e2e.conftest import gate_id
from tests.support.polling import wait_for
from tests.support.workflows import executions, store


@pytest.fixture(scope="module")
def http(app) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client


def wait_run(
    http: httpx.Client, run_id: str, *statuses: str, timeout: float = 60
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = http.get(f"/api/v1/workflows/{run_id}").json()
        return run if run["status"] in statuses else None

    return wait_for(done, timeout=timeout, what=f"run {run_id} to be {statuses}")


def test_a_run_started_over_http_succeeds_and_get_shows_its_steps(http, worker):
    payload = signup_input(plan="pro")
    started = http.post("/api/v1/workflows/signup", json={"input": payload})
    assert started.status_code == 202
    run = wait_run(http, started.json()["id"], "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    assert run["started_at"] and run["finished_at"]
    assert [(s["name"], s["status"], s["attempts"]) for s in run["steps"]] == [
        ("create_user", "succeeded", 1),
        ("provision_plan", "succeeded", 1),
        ("send_welcome_email", "succeeded", 1),
        ("notify_team", "succeeded", 1),
        ("send_welcome_sms", "skipped", 1),  # no phone given
    ]
    assert run["steps"][0]["output"]["email"] == payload["email"]
    assert run["steps"][1]["output"]["customer_id"].startswith("cus_local_")
    assert all(s["started_at"] <= s["finished_at"] for s in run["steps"])
    listed = http.get("/api/v1/workflows", params={"status": "succeeded", "name": "signup"}).json()
    assert run["id"] in [item["id"] for item in listed["items"]]


def test_a_failed_run_retried_over_http_resumes_at_the_failed_step(http, worker):  # noqa: F811
    gate = gate_id()
    run_id = http.post("/api/v1/workflows/fixable", json={"input": {"gate": gate}}).json()["id"]
    failed = wait_run(http, run_id, "failed", "succeeded")
    assert failed["status"] == "failed"
    assert failed["error"]["step"] == "needs_fix"
    assert http.post(f"/api/v1/workflows/{run_id}/cancel").status_code == 409

    store().set(f"gate:{gate}", 1)
    retried = http.post(f"/api/v1/workflows/{run_id}/retry")
    assert retried.status_code == 202
    assert retried.json()["status"] in ("pending", "running", "succeeded")
    run = wait_run(http, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    assert executions(run_id, "setup") == 1
    assert executions(run_id, "needs_fix") == 2
    assert http.post(f"/api/v1/workflows/{run_id}/retry").status_code == 409


def test_a_run_cancelled_over_http_starts_no_later_step(http, worker):  # noqa: F811
    gate = gate_id()
    run_id = http.post("/api/v1/workflows/gated", json={"input": {"gate": gate}}).json()["id"]
    wait_for(
        lambda: store().sismember(f"arrived:{gate}", run_id), timeout=60, what="step 2 to block"
    )
    cancelled = http.post(f"/api/v1/workflows/{run_id}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    store().set(f"gate:{gate}", 1)
    wait_for(
        lambda: (
            http.get(f"/api/v1/workflows/{run_id}").json()["steps"][1]["status"]
            in ("succeeded", "failed")
        ),
        timeout=30,
        what="the blocked step to finish",
    )
    run = http.get(f"/api/v1/workflows/{run_id}").json()
    assert run["status"] == "cancelled"
    assert run["steps"][2]["status"] == "pending"
    assert executions(run_id, "last") == 0
