"""GET /api/v1/workflows: filters, newest first, keyset pagination."""

from __future__ import annotations

import uuid

from tests.api.conftest import RUN_KEYS, assert_error, signup_input, start


def test_lists_newest_first_across_pages_with_next_cursor(client):
    tag = uuid.uuid4().hex[:8]
    ids = [start(client, "flaky", {}).get_json()["id"] for _ in range(5)]
    # other runs may exist: walk the flaky runs until all of ours are seen
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"name": "flaky", "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/workflows", query_string=query)
        assert response.status_code == 200, tag
        page = response.get_json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    mine = [run_id for run_id in seen if run_id in ids]
    assert mine == list(reversed(ids))
    assert len(seen) == len(set(seen)), "a run appeared on two pages"
    assert pages >= 3


def test_items_are_runs_without_steps(client):
    start(client, "signup", signup_input())
    item = client.get("/api/v1/workflows", query_string={"limit": 1}).get_json()["items"][0]
    assert set(item) == RUN_KEYS - {"steps"}  # list items leave the steps out


def test_filters_by_status_and_name(client):
    run = start(client, "signup", signup_input()).get_json()
    client.post(f"/api/v1/workflows/{run['id']}/cancel")
    page = client.get(
        "/api/v1/workflows", query_string={"status": "cancelled", "name": "signup", "limit": 500}
    ).get_json()
    assert run["id"] in [item["id"] for item in page["items"]]
    assert {(i["status"], i["name"]) for i in page["items"]} == {("cancelled", "signup")}
    empty = client.get("/api/v1/workflows", query_string={"name": "no_such_workflow"}).get_json()
    assert empty == {"items": [], "next_cursor": None}


def test_limit_defaults_to_50(client):
    for _ in range(51):
        start(client, "flaky", {})
    page = client.get("/api/v1/workflows").get_json()
    assert len(page["items"]) == 50
    assert page["next_cursor"] is not None


def test_bad_status_limit_or_cursor_is_422_naming_the_field(client):
    cases = [
        ({"status": "done"}, "status"),
        ({"status": "PENDING"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "bm90aGluZw"}, "cursor"),
    ]
    for query, field in cases:
        response = client.get("/api/v1/workflows", query_string=query)
        error = assert_error(response, 422, "invalid_input")
        assert set(error["details"]) == {field}, (query, error)
        assert field in error["message"]
