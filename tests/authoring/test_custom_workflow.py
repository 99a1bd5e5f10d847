"""A workflow defined in the test suite, not in app/: registered from
WORKFLOW_MODULES, described and started over the API, run by a real worker."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app import create_app
from tests.api.servers import serve_in_thread
from tests.support.polling import wait_for


@pytest.fixture(scope="module")
def http(database) -> Iterator[httpx.Client]:
    with serve_in_thread(create_app()) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client


def test_the_workflow_is_described_with_its_steps_and_schema(http):
    types = http.get("/api/v1/workflow-types").json()
    items = types["items"] if isinstance(types, dict) else types
    greeting = next(t for t in items if t["name"] == "greeting")
    assert [s["name"] for s in greeting["steps"]] == ["compose", "shout"]
    assert "name" in greeting["input_schema"]["properties"]


def test_it_is_started_over_http_and_run_by_a_real_worker(http, worker):
    started = http.post("/api/v1/workflows/greeting", json={"input": {"name": "ada", "times": 2}})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def done():
        run = http.get(f"/api/v1/workflows/{run_id}").json()
        return run if run["status"] in ("succeeded", "failed") else None

    run = wait_for(done, what="the greeting to finish")
    assert run["status"] == "succeeded", run["error"]
    assert run["output"]["shout"] == {"text": "HELLO ADA HELLO ADA!", "run": run_id}
    assert [(s["name"], s["status"], s["attempts"]) for s in run["steps"]] == [
        ("compose", "succeeded", 1),
        ("shout", "succeeded", 1),
    ]


def test_its_input_schema_guards_the_api(http):
    bad = http.post("/api/v1/workflows/greeting", json={"input": {"name": "", "times": 9}})
    assert bad.status_code == 422
    details = bad.json()["error"]["details"]
    assert "name" in str(details) and "times" in str(details)


def test_its_steps_are_celery_tasks_named_after_it():
    from workers import app

    assert {"greeting.compose", "greeting.shout"} <= set(app.tasks)
    assert app.tasks["greeting.shout"].soft_time_limit == 5
