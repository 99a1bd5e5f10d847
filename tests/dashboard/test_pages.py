"""The pages over the Flask test client: what they show and what they refuse.
Real database; no worker (runs stay pending unless a test moves them)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from tests.dashboard.conftest import TOKEN


def csrf(client: FlaskClient, path: str = "/workflow-types") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)




_started: list = []


def start(manager, key: str | None = None) -> dict:
    run = manager.start("flaky", {"fail_times": 0}, idempotency_key=key).run
    _started.append(run["id"])
    return run


@pytest.fixture(scope="module", autouse=True)
def _cancel_leftovers(manager):
    """No worker here: cancel what is still pending so no later sweep finds it."""
    yield
    for run_id in _started:
        if manager.get(run_id)["status"] == "pending":
            manager.cancel(run_id)


def test_runs_list_shows_status_workflow_and_counts(client, manager):
    run = start(manager)
    html = client.get("/").get_data(as_text=True)
    assert str(run["id"])[:8] in html
    assert 'data-count-for="pending"' in html
    assert 'data-live="true"' in html  # a pending run keeps the page refreshing


def test_runs_list_filters_by_status_and_workflow(client, manager):
    pending = start(manager)
    cancelled = start(manager)
    manager.cancel(cancelled["id"])
    html = client.get("/?status=cancelled").get_data(as_text=True)
    assert str(cancelled["id"]) in html and str(pending["id"]) not in html
    html = client.get("/?workflow=gated").get_data(as_text=True)
    assert str(cancelled["id"]) not in html and str(pending["id"]) not in html


def test_search_by_run_id_opens_the_run(client, manager):
    run = start(manager)
    response = client.get(f"/?q={run['id']}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/runs/{run['id']}"


def test_search_by_idempotency_key_lists_its_run(client, manager):
    key = f"order-{uuid.uuid4().hex[:8]}"
    run = start(manager, key=key)
    other = start(manager)
    html = client.get(f"/?q={key}").get_data(as_text=True)
    assert str(run["id"]) in html and str(other["id"]) not in html
    assert "No run matches" in client.get("/?q=no-such-key").get_data(as_text=True)


def test_runs_list_pages_with_a_cursor(client, manager):
    for _ in range(3):
        start(manager)
    first = client.get("/?workflow=flaky").get_data(as_text=True)
    ids = re.findall(r'data-run-id="([^"]+)"', first)
    assert len(ids) >= 3
    cursor = re.search(r'cursor=([^"&]+)"', first)
    if cursor:  # more than one page of runs in this session's table
        older = client.get(f"/?workflow=flaky&cursor={cursor.group(1)}").get_data(as_text=True)
        assert not set(ids) & set(re.findall(r'data-run-id="([^"]+)"', older))
    assert client.get("/?cursor=garbage").status_code == 302


def test_pending_run_offers_cancel_and_not_retry(client, manager):
    run = start(manager)
    html = client.get(f"/runs/{run['id']}").get_data(as_text=True)
    assert 'id="cancel"' in html and 'id="retry"' not in html
    for step in ("prepare", "call_api", "finish"):
        assert f'data-step="{step}"' in html


def test_cancelled_run_offers_retry_and_not_cancel(client, manager):
    run = start(manager)
    manager.cancel(run["id"])
    html = client.get(f"/runs/{run['id']}").get_data(as_text=True)
    assert 'id="retry"' in html and 'id="cancel"' not in html


def test_cancel_button_cancels_the_run(client, manager):
    run = start(manager)
    token = csrf(client, f"/runs/{run['id']}")
    response = client.post(f"/runs/{run['id']}/cancel", data={"csrf_token": token})
    assert response.status_code == 302
    assert manager.get(run["id"])["status"] == "cancelled"
    assert "Run cancelled" in client.get(f"/runs/{run['id']}").get_data(as_text=True)


def test_illegal_action_is_reported_not_applied(client, manager):
    run = start(manager)
    token = csrf(client, f"/runs/{run['id']}")
    client.post(f"/runs/{run['id']}/cancel", data={"csrf_token": token})
    client.post(f"/runs/{run['id']}/cancel", data={"csrf_token": token})
    html = client.get(f"/runs/{run['id']}").get_data(as_text=True)
    assert "Not cancelled: cannot cancel a run that is cancelled" in html


def test_post_without_csrf_token_is_refused(client, manager):
    run = start(manager)
    response = client.post(f"/runs/{run['id']}/cancel", data={})
    assert response.status_code == 400
    assert manager.get(run["id"])["status"] == "pending"
    response = client.post(f"/runs/{run['id']}/cancel", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert manager.get(run["id"])["status"] == "pending"


def test_unknown_run_is_a_404_page(client):
    assert client.get(f"/runs/{uuid.uuid4()}").status_code == 404
    assert client.get("/runs/not-a-uuid").status_code == 404


def test_workflow_types_show_steps_schema_and_a_start_form(client):
    html = client.get("/workflow-types").get_data(as_text=True)
    for step in ("create_user", "provision_plan", "send_welcome_email", "notify_team", "send_welcome_sms"):
        assert f'data-step="{step}"' in html
    assert 'id="start-signup"' in html
    assert "free | pro" in html  # the plan field's choices


def test_start_form_starts_a_run_and_opens_it(client, manager):
    token = csrf(client)
    email = f"form-{uuid.uuid4().hex[:6]}@example.com"
    response = client.post(
        "/workflow-types/signup/start",
        data={"csrf_token": token, "email": email, "name": "Form", "plan": "free"},
    )
    assert response.status_code == 302
    run_id = response.headers["Location"].rsplit("/", 1)[1]
    _started.append(run_id)
    run = manager.get(run_id)
    assert run["name"] == "signup" and run["input"]["email"] == email


def test_start_form_shows_what_is_wrong_with_the_input(client):
    token = csrf(client)
    response = client.post(
        "/workflow-types/signup/start",
        data={"csrf_token": token, "email": "not-an-email", "name": "", "plan": "gold"},
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Not a valid email address." in html
    assert "Missing data for required field." in html  # name
    assert "Must be one of: free, pro." in html


def test_start_form_with_a_used_idempotency_key_and_other_input_is_a_conflict(client, manager):
    key = f"k-{uuid.uuid4().hex[:8]}"
    start(manager, key=key)
    token = csrf(client)
    response = client.post(
        "/workflow-types/flaky/start",
        data={"csrf_token": token, "fail_times": "1", "idempotency_key": key},
    )
    assert response.status_code == 409
    assert "already used with a different request body" in response.get_data(as_text=True)


def test_flower_link_uses_the_configured_url(client):
    html = client.get("/").get_data(as_text=True)
    assert 'href="http://127.0.0.1:5555"' in html


# -- sign-in (API_TOKEN set) ---------------------------------------------------


def test_without_a_session_every_page_redirects_to_sign_in(token_app):
    client = token_app.test_client()
    for path in ("/", f"/runs/{uuid.uuid4()}", "/workflow-types"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/sign-in?next=")


def test_a_wrong_token_is_refused_and_the_right_one_signs_in(token_app):
    client = token_app.test_client()
    token = csrf(client, "/sign-in")
    bad = client.post("/sign-in", data={"csrf_token": token, "token": "nope", "next": "/"})
    assert bad.status_code == 401 and "not valid" in bad.get_data(as_text=True)
    good = client.post(
        "/sign-in", data={"csrf_token": token, "token": TOKEN, "next": "/workflow-types"}
    )
    assert good.status_code == 302 and good.headers["Location"] == "/workflow-types"
    assert client.get("/workflow-types").status_code == 200


def test_sign_in_never_redirects_off_site(token_app):
    client = token_app.test_client()
    token = csrf(client, "/sign-in")
    response = client.post(
        "/sign-in", data={"csrf_token": token, "token": TOKEN, "next": "//evil.example/x"}
    )
    assert response.headers["Location"] == "/"


def test_session_cookie_holds_no_token_and_sign_out_ends_it(token_app):
    client = token_app.test_client()
    token = csrf(client, "/sign-in")
    response = client.post("/sign-in", data={"csrf_token": token, "token": TOKEN, "next": "/"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    data = token_app.session_interface.get_signing_serializer(token_app).loads(value)
    assert data["auth"] and TOKEN not in json.dumps(data)
    token = csrf(client, "/")
    client.post("/sign-out", data={"csrf_token": token})
    assert client.get("/").status_code == 302


def test_workflow_types_page_can_show_one_type(client):
    html = client.get("/workflow-types?workflow=signup").get_data(as_text=True)
    assert 'id="workflow-signup"' in html and 'id="workflow-gated"' not in html
    assert client.get("/workflow-types?workflow=nope").status_code == 404


# -- filters, counts, search (issue 14) ----------------------------------------


def db_now(manager) -> str:
    with manager.engine.connect() as c:
        return c.execute(sa.text("SELECT now()")).scalar_one().isoformat()


def count_of(html: str, status: str) -> str:
    match = re.search(rf'data-count-for="{status}">.*?<span class="count"[^>]*>([^<]+)<', html, re.S)
    assert match, f"no {status} tab"
    return match.group(1)


def test_status_counts_follow_the_workflow_filter(client, manager):
    since = db_now(manager)
    held = manager.start("held", {"gate": "never"}).run
    manager.cancel(held["id"])
    for _ in range(2):
        start(manager)
    _started.append(held["id"])
    html = client.get("/", query_string={"workflow": "held", "created_after": since}).get_data(
        as_text=True
    )
    assert (count_of(html, "cancelled"), count_of(html, "pending")) == ("1", "0")
    html = client.get("/", query_string={"workflow": "flaky", "created_after": since}).get_data(
        as_text=True
    )
    assert (count_of(html, "cancelled"), count_of(html, "pending")) == ("0", "2")
    # the tab a count invites to click shows that run, with the workflow filter kept
    tab = re.search(r'href="([^"]*status=cancelled[^"]*)"', html)
    assert tab and "workflow=flaky" in tab.group(1)
    html = client.get(
        "/", query_string={"workflow": "held", "status": "cancelled", "created_after": since}
    ).get_data(as_text=True)
    assert f'data-run-id="{held["id"]}"' in html and "No runs yet" not in html
    empty = client.get(
        "/", query_string={"workflow": "held", "status": "failed", "created_after": since}
    ).get_data(as_text=True)
    assert "No runs match these filters" in empty and "No runs yet" not in empty


def test_the_short_id_the_list_shows_finds_the_run(client, manager):
    run = start(manager)
    short = str(run["id"])[:8]
    response = client.get(f"/?q={short}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    found = re.findall(r'data-run-id="([^"]+)"', html)
    assert str(run["id"]) in found and all(i.startswith(short) for i in found)


def test_search_by_an_input_field(client, manager):
    email = f"find-{uuid.uuid4().hex[:8]}@example.com"
    run = manager.start("signup", {"email": email, "name": "Find Me", "plan": "free"}).run
    _started.append(run["id"])
    start(manager)
    html = client.get("/", query_string={"q": f"input.email={email}"}).get_data(as_text=True)
    assert re.findall(r'data-run-id="([^"]+)"', html) == [str(run["id"])]
    bad = client.get("/", query_string={"q": "input.a..b=1"}).get_data(as_text=True)
    assert "does not name an input field" in bad


def test_a_bad_filter_value_is_named_and_ignored(client):
    html = client.get("/", query_string={"created_after": "someday"}).get_data(as_text=True)
    assert "Created after &#39;someday&#39; is not a time." in html
    assert client.get("/", query_string={"workflow": "fla\x00ky", "q": "\x00"}).status_code == 200


def test_api_docs_are_readable_from_a_signed_in_browser_session_only(token_app):
    client = token_app.test_client()
    assert client.get("/api/docs").status_code == 401
    token = csrf(client, "/sign-in")
    client.post("/sign-in", data={"csrf_token": token, "token": TOKEN, "next": "/"})
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "/api/v1/workflows/bulk/retry" in docs.get_data(as_text=True)
    assert client.get("/api/openapi.json").get_json()["info"]["title"] == "Stepwise"
    # the session reads the documentation; it does not act through the API
    assert client.get("/api/v1/workflows").status_code == 401
    assert client.post("/api/v1/workflows/bulk/cancel", json={}).status_code == 401
    html = client.get("/").get_data(as_text=True)
    assert 'href="/api/docs"' in html


# -- bulk actions --------------------------------------------------------------


def test_bulk_retry_from_a_filtered_list_confirms_the_count_then_acts(client, manager):
    since = db_now(manager)
    runs = [start(manager) for _ in range(3)]
    for run in runs[:2]:
        manager.cancel(run["id"])
    filters = {"workflow": "flaky", "created_after": since}

    listing = client.get("/", query_string=filters).get_data(as_text=True)
    assert 'id="select-all-matching"' in listing
    assert re.search(r'id="matching-count">3<', listing)
    assert 'id="bulk-retry"' in listing and 'id="bulk-cancel"' in listing
    cancelled_only = client.get("/", query_string={**filters, "status": "cancelled"})
    assert 'id="bulk-cancel"' not in cancelled_only.get_data(as_text=True)

    confirm = client.get("/bulk/retry", query_string=filters).get_data(as_text=True)
    assert re.search(r'id="confirm-count">3<', confirm)
    assert re.search(r'id="eligible-count">2<', confirm)  # the pending one cannot be retried
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm).group(1)

    refused = client.post("/bulk/retry", data=filters)
    assert refused.status_code == 400
    assert {manager.get(r["id"])["status"] for r in runs[:2]} == {"cancelled"}

    result = client.post("/bulk/retry", data={**filters, "csrf_token": token})
    assert result.status_code == 200
    html = result.get_data(as_text=True)
    assert 'data-matched="3" data-changed="2" data-skipped="1"' in html
    assert "cannot retry a run that is pending" in html
    assert [manager.get(r["id"])["status"] for r in runs] == ["pending"] * 3


def test_bulk_post_refuses_no_filter_or_a_filter_it_cannot_read(client, manager):
    token = csrf(client)
    run = start(manager)
    for data in ({}, {"status": "bogus"}, {"created_after": "someday"}):
        response = client.post("/bulk/cancel", data={**data, "csrf_token": token})
        assert response.status_code == 400, data
    assert manager.get(run["id"])["status"] == "pending"
    assert client.get("/bulk/explode?workflow=flaky").status_code == 404
