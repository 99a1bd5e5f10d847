"""POST /api/v1/workflows/<name>/batch and ``WorkflowManager.start_many``: many runs,
one transaction, all or none (issue 15)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from app.engine.batch import BATCH_MAX, BatchItem
from app.engine.errors import IdempotencyConflict, InvalidInput, UnknownWorkflow
from tests.api.conftest import RUN_KEYS, STEP_KEYS, assert_error, signup_input, start
from tests.support.polling import wait_for
from tests.support.workflows import executions

FLAKY_STEPS = ["prepare", "call_api", "finish"]


def batch(client: Any, name: str, items: list[dict[str, Any]]) -> Any:
    return client.post(f"/api/v1/workflows/{name}/batch", json={"items": items})


def key() -> str:
    return f"batch-{uuid.uuid4().hex[:12]}"


def count_runs(engine: sa.Engine, where: str = "true", **params: Any) -> int:
    with engine.connect() as c:
        return int(c.execute(sa.text(f"SELECT count(*) FROM workflow_runs WHERE {where}"),
                             params).scalar_one())


def totals(engine: sa.Engine) -> tuple[int, int]:
    """Rows in workflow_runs and workflow_steps: what "writes nothing" is checked against."""
    with engine.connect() as c:
        return (
            int(c.execute(sa.text("SELECT count(*) FROM workflow_runs")).scalar_one()),
            int(c.execute(sa.text("SELECT count(*) FROM workflow_steps")).scalar_one()),
        )


def with_keys(engine: sa.Engine, keys: list[str]) -> dict[str, str]:
    with engine.connect() as c:
        rows = c.execute(
            sa.text("SELECT idempotency_key, id::text FROM workflow_runs "
                    "WHERE idempotency_key = ANY(:keys)"), {"keys": keys}
        ).all()
    return {k: i for k, i in rows}


# -- the first test runs before the module's worker exists: its runs wait, pending ----


def test_two_hundred_runs_from_one_call_are_pending_with_their_steps_then_all_succeed(
    client, engine, request
):
    response = batch(client, "flaky", [{"input": {"fail_times": 0}} for _ in range(200)])
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    assert body["created"] == 200 and len(body["items"]) == 200
    ids = [run["id"] for run in body["items"]]
    assert len(set(ids)) == 200
    for run in body["items"]:
        assert set(run) == RUN_KEYS and run["status"] == "pending"
        assert [s["name"] for s in run["steps"]] == FLAKY_STEPS
        assert all(set(s) == STEP_KEYS and s["status"] == "pending" for s in run["steps"])
    with engine.connect() as c:
        runs = dict(c.execute(sa.text(
            "SELECT status, count(*) FROM workflow_runs WHERE id::text = ANY(:ids) GROUP BY 1"
        ), {"ids": ids}).all())
        steps = c.execute(sa.text(
            "SELECT name, status, dispatched_at IS NOT NULL AS sent, count(*) "
            "FROM workflow_steps WHERE run_id::text = ANY(:ids) GROUP BY 1, 2, 3 ORDER BY 1"
        ), {"ids": ids}).all()
    assert runs == {"pending": 200}
    # every run has its three steps; only the first is marked as sent
    assert sorted(tuple(row) for row in steps) == [
        ("call_api", "pending", False, 200),
        ("finish", "pending", False, 200),
        ("prepare", "pending", True, 200),
    ]

    request.getfixturevalue("worker")  # now the chains sent after the commit are run

    def finished() -> int:
        return count_runs(
            engine, "id::text = ANY(:ids) AND status IN ('succeeded', 'failed')", ids=ids
        ) == 200

    wait_for(finished, timeout=180, interval=0.5, what="the 200 runs to finish")
    assert count_runs(engine, "id::text = ANY(:ids) AND status = 'succeeded'", ids=ids) == 200
    with engine.connect() as c:
        step_statuses = dict(c.execute(sa.text(
            "SELECT status, count(*) FROM workflow_steps WHERE run_id::text = ANY(:ids) "
            "GROUP BY 1"), {"ids": ids}).all())
    assert step_statuses == {"succeeded": 600}
    # each step body ran once per run
    assert {executions(run_id, step) for run_id in ids for step in FLAKY_STEPS} == {1}


def test_a_batch_with_bad_items_writes_nothing_and_names_each_by_index(client, engine):
    before = totals(engine)
    items = [{"input": signup_input()} for _ in range(5)]
    items[1]["input"]["email"] = "not-an-address"
    del items[3]["input"]["name"]
    error = assert_error(batch(client, "signup", items), 422, "invalid_input")
    assert set(error["details"]) == {"items"}
    assert set(error["details"]["items"]) == {"1", "3"}
    assert set(error["details"]["items"]["1"]["input"]) == {"email"}
    assert set(error["details"]["items"]["3"]["input"]) == {"name"}
    assert totals(engine) == before


def test_marshmallow_only_problems_are_named_by_index_too(client, engine, manager):
    """An input the published schema allows but the workflow's own schema refuses (a
    NUL character) is still a 422 for its item, from start_many itself."""
    before = totals(engine)
    items = [{"input": signup_input()}, {"input": signup_input(name="Ada\x00")}]
    with pytest.raises(InvalidInput) as raised:
        manager.start_many("signup", items)
    assert set(raised.value.details["items"]) == {"1"}
    assert "input" in raised.value.details["items"]["1"]
    assert totals(engine) == before


def test_a_replayed_batch_gives_back_the_same_runs_with_200(client, engine):
    keys = [key(), key()]
    items = [{"input": signup_input(), "idempotency_key": k} for k in keys]
    first = batch(client, "signup", items)
    assert first.status_code == 202 and first.get_json()["created"] == 2
    again = batch(client, "signup", items)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.get_json()["created"] == 0
    assert [r["id"] for r in again.get_json()["items"]] == [r["id"] for r in first.get_json()["items"]]
    assert [r["idempotency_key"] for r in again.get_json()["items"]] == keys
    # a batch mixing a replay with a new key starts only the new one
    third_key = key()
    mixed = batch(client, "signup", [items[1], {"input": signup_input(), "idempotency_key": third_key}])
    assert mixed.status_code == 202 and mixed.get_json()["created"] == 1
    assert mixed.get_json()["items"][0]["id"] == first.get_json()["items"][1]["id"]
    assert len(with_keys(engine, [*keys, third_key])) == 3


def test_a_key_a_single_start_used_is_replayed_by_a_batch(client):
    k, payload = key(), signup_input()
    single = start(client, "signup", payload, key=k)
    assert single.status_code == 202
    replay = batch(client, "signup", [{"input": payload, "idempotency_key": k}])
    assert replay.status_code == 200
    # the same run (a worker of this module may have moved it on since)
    fixed = ("id", "name", "input", "idempotency_key", "created_at", "definition_version")
    replayed, started = replay.get_json()["items"][0], single.get_json()
    assert {f: replayed[f] for f in fixed} == {f: started[f] for f in fixed}
    assert set(replayed) == set(started)


def test_a_key_used_with_another_input_is_409_and_nothing_is_written(client, engine):
    used = key()
    assert batch(client, "signup", [{"input": signup_input(), "idempotency_key": used}]).status_code == 202
    before = totals(engine)
    fresh = key()
    response = batch(client, "signup", [
        {"input": signup_input(), "idempotency_key": fresh},
        {"input": signup_input(), "idempotency_key": used},
    ])
    error = assert_error(response, 409, "idempotency_conflict")
    assert set(error["details"]["items"]) == {"1"}
    assert error["details"]["items"]["1"]["idempotency_key"] == used
    assert totals(engine) == before
    assert with_keys(engine, [fresh]) == {}


def test_the_same_key_twice_in_one_batch_is_422_naming_the_second(client, engine):
    before = totals(engine)
    k = key()
    response = batch(client, "signup", [
        {"input": signup_input(), "idempotency_key": k},
        {"input": signup_input()},
        {"input": signup_input(), "idempotency_key": k},
    ])
    error = assert_error(response, 422, "invalid_input")
    assert set(error["details"]["items"]) == {"2"}
    assert "item 0" in error["details"]["items"]["2"]["idempotency_key"][0]
    assert totals(engine) == before


def test_more_than_the_limit_or_no_items_is_422(client, engine, manager):
    before = totals(engine)
    over = [{"input": {}} for _ in range(BATCH_MAX + 1)]
    error = assert_error(batch(client, "flaky", over), 422,
                         "invalid_input")
    assert set(error["details"]) == {"items"}
    assert_error(batch(client, "flaky", []), 422, "invalid_input")
    with pytest.raises(InvalidInput) as raised:
        manager.start_many("flaky", over)
    assert str(BATCH_MAX) in raised.value.message
    assert totals(engine) == before


def test_an_unknown_workflow_is_404(client, engine):
    before = totals(engine)
    assert_error(batch(client, "no_such_workflow", [{"input": {}}]), 404, "unknown_workflow")
    # a run id where the name goes is no workflow either (never read as a run)
    assert_error(batch(client, str(uuid.uuid4()), [{"input": {}}]), 404, "unknown_workflow")
    assert totals(engine) == before


def test_bodies_are_refused_as_on_the_other_routes(client, make_app):
    url = "/api/v1/workflows/signup/batch"
    assert_error(client.post(url, data="items", content_type="text/plain"), 415,
                 "unsupported_media_type")
    assert_error(client.post(url, data="{", content_type="application/json"), 400,
                 "malformed_json")
    error = assert_error(client.post(url, json={"items": [{"input": signup_input(), "x": 1}]}),
                         422, "invalid_input")
    assert set(error["details"]["items"]["0"]) == {"x"}
    assert_error(client.post(url, json={"items": [{"input": signup_input()}], "more": 1}), 422,
                 "invalid_input")
    small = make_app(max_content_length=1024).test_client()
    big = {"items": [{"input": signup_input()} for _ in range(30)]}
    assert_error(small.post(url, json=big), 413, "payload_too_large")
    assert client.get(url).status_code == 405


def test_the_route_is_behind_the_api_token(make_app):
    client = make_app(api_token="batch-token").test_client()
    url = "/api/v1/workflows/signup/batch"
    body = {"items": [{"input": signup_input()}]}
    assert_error(client.post(url, json=body), 401, "unauthorized")
    authorized = client.post(url, json=body, headers={"Authorization": "Bearer batch-token"})
    assert authorized.status_code == 202


def test_start_many_from_python_returns_runs_shaped_as_start_does(manager, engine):
    single = manager.start("signup", signup_input())
    k = key()
    results = manager.start_many(
        "signup", [BatchItem(signup_input(plan="pro")), {"input": signup_input(), "idempotency_key": k}]
    )
    assert [r.created for r in results] == [True, True]
    for result in results:
        assert set(result.run) == set(single.run)
        assert [set(s) for s in result.run["steps"]] == [set(s) for s in single.run["steps"]]
        assert result.run == manager.get(result.run["id"])  # what was stored, as get reads it
    assert results[0].run["input"]["plan"] == "pro"
    assert results[1].run["idempotency_key"] == k
    replay = manager.start_many("signup", [{"input": results[1].run["input"], "idempotency_key": k}])
    assert replay[0].created is False and replay[0].run == results[1].run
    with pytest.raises(IdempotencyConflict):
        manager.start_many("signup", [{"input": signup_input(), "idempotency_key": k}])
    with pytest.raises(UnknownWorkflow):
        manager.start_many("no_such_workflow", [{"input": {}}])
    with pytest.raises(InvalidInput) as raised:
        manager.start_many("signup", [{"input": signup_input()}, {"input": {"email": "x"}}])
    assert set(raised.value.details["items"]["1"]["input"]) == {"email", "name", "plan"}


def test_a_designed_workflow_is_batch_started_at_its_latest_version(client, engine):
    from tests.designer.conftest import definition, mail, save, unique

    name = unique()
    assert save(client, definition(name, [mail()])).status_code == 201
    response = batch(client, name, [{"input": {"email": f"{i}@example.com"}} for i in range(3)])
    assert response.status_code == 202, response.get_data(as_text=True)
    runs = response.get_json()["items"]
    assert {r["definition_version"] for r in runs} == {1}
    assert [[s["name"] for s in r["steps"]] for r in runs] == [["mail"]] * 3
    assert count_runs(engine, "name = :n AND definition_version = 1", n=name) == 3
    bad = batch(client, name, [{"input": {"email": "a@example.com"}}, {"input": {}}])
    error = assert_error(bad, 422, "invalid_input")
    assert set(error["details"]["items"]) == {"1"}
