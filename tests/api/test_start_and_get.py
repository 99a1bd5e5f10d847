"""POST /api/v1/workflows/<name> and GET /api/v1/workflows/<run_id>."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import sqlalchemy as sa

from tests.api.conftest import RUN_KEYS, STEP_KEYS, assert_error, signup_input, start


def test_start_answers_202_with_the_pending_run_and_its_steps(client):
    payload = signup_input(plan="pro")
    response = start(client, "signup", payload)
    assert response.status_code == 202
    run = response.get_json()
    assert set(run) == RUN_KEYS
    uuid.UUID(run["id"])
    assert (run["name"], run["status"], run["input"]) == ("signup", "pending", payload)
    assert run["output"] is None and run["error"] is None
    assert run["definition_version"] is None  # a code-defined workflow
    assert datetime.fromisoformat(run["created_at"]).utcoffset() is not None
    assert [s["name"] for s in run["steps"]] == [
        "create_user",
        "provision_plan",
        "send_welcome_email",
        "notify_team",
        "send_welcome_sms",
    ]
    for position, step in enumerate(run["steps"]):
        assert set(step) == STEP_KEYS
        assert (step["position"], step["status"], step["attempts"]) == (position, "pending", 0)
    assert response.headers["Location"] == f"/api/v1/workflows/{run['id']}"


def test_get_returns_the_run_with_its_steps(client):
    started = start(client, "signup", signup_input()).get_json()
    response = client.get(f"/api/v1/workflows/{started['id']}")
    assert response.status_code == 200
    run = response.get_json()
    assert run == started
    assert run["created_at"].endswith("+00:00")


def test_unknown_workflow_name_is_404(client, engine):
    with engine.connect() as c:
        before = c.execute(sa.text("SELECT count(*) FROM workflow_runs")).scalar()
    error = assert_error(start(client, "no_such_workflow", {}), 404, "unknown_workflow")
    assert "no_such_workflow" in error["message"]
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM workflow_runs")).scalar() == before


def test_unknown_run_id_is_404(client):
    assert_error(client.get(f"/api/v1/workflows/{uuid.uuid4()}"), 404, "run_not_found")


def test_malformed_run_id_is_404_on_get_retry_and_cancel(client):
    for bad in ("not-a-uuid", "signup", "123", "0" * 40):
        if bad != "signup":
            assert_error(client.get(f"/api/v1/workflows/{bad}"), 404, "run_not_found")
        assert_error(client.post(f"/api/v1/workflows/{bad}/retry"), 404, "run_not_found")
        assert_error(client.post(f"/api/v1/workflows/{bad}/cancel"), 404, "run_not_found")


def test_the_shared_url_allows_get_for_a_run_and_post_for_a_workflow(client):
    run_url = f"/api/v1/workflows/{uuid.uuid4()}"
    error = assert_error(client.get("/api/v1/workflows/signup"), 405, "method_not_allowed")
    assert "POST starts it" in error["message"]
    response = client.post(run_url, json={"input": {}})
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET"
    assert client.options(run_url).headers["Allow"] == "GET, HEAD, OPTIONS"
    assert client.options("/api/v1/workflows/signup").headers["Allow"] == "POST, OPTIONS"


def test_input_is_held_to_the_published_schema_not_to_marshmallows_leniency(client):
    response = start(client, "flaky", {"fail_times": "2", "fatal": 0})
    error = assert_error(response, 422, "invalid_input")
    assert set(error["details"]["input"]) == {"fail_times", "fatal"}


def test_invalid_input_is_422_naming_each_bad_field(client):
    response = start(client, "signup", {"email": "not-an-address", "plan": "gold"})
    error = assert_error(response, 422, "invalid_input")
    assert set(error["details"]["input"]) == {"email", "name", "plan"}


def test_phone_must_be_e164_and_is_optional(client):
    error = assert_error(start(client, "signup", signup_input(phone="0415 555 0100")), 422,
                         "invalid_input")
    assert set(error["details"]["input"]) == {"phone"}
    response = start(client, "signup", signup_input(phone="+14155550100"))
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["input"]["phone"] == "+14155550100"


def test_input_that_is_not_an_object_is_422(client):
    response = client.post("/api/v1/workflows/signup", json={"input": ["a", "b"]})
    error = assert_error(response, 422, "invalid_input")
    assert set(error["details"]) == {"input"}


def test_missing_input_or_extra_keys_are_422_naming_them(client):
    error = assert_error(client.post("/api/v1/workflows/signup", json={}), 422, "invalid_input")
    assert set(error["details"]) == {"input"}
    response = client.post(
        "/api/v1/workflows/signup", json={"input": signup_input(), "priority": "high"}
    )
    error = assert_error(response, 422, "invalid_input")
    assert set(error["details"]) == {"priority"}


def test_a_body_that_is_not_a_json_object_is_422(client):
    response = client.post("/api/v1/workflows/signup", json=["input"])
    assert_error(response, 422, "invalid_input")


def test_malformed_json_is_400(client):
    for body in (b'{"input": {', b"", b"\xff\xfe", b"{'input': {}}"):
        response = client.post(
            "/api/v1/workflows/signup", data=body, content_type="application/json"
        )
        assert_error(response, 400, "malformed_json")


def test_a_body_that_is_not_json_is_415(client):
    response = client.post(
        "/api/v1/workflows/signup", data="email=a@b.c", content_type="text/plain"
    )
    error = assert_error(response, 415, "unsupported_media_type")
    assert error["details"] == {"content_type": "text/plain"}
    response = client.post(
        "/api/v1/workflows/signup",
        data={"input": "x"},  # form-encoded
    )
    assert_error(response, 415, "unsupported_media_type")
    assert_error(client.post("/api/v1/workflows/signup"), 415, "unsupported_media_type")


def test_a_json_suffix_media_type_is_accepted(client):
    response = client.post(
        "/api/v1/workflows/signup",
        data=json.dumps({"input": signup_input()}),
        content_type="application/vnd.stepwise+json",
    )
    assert response.status_code == 202


def test_a_body_over_max_content_length_is_413(client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    big = {"input": {**signup_input(), "name": "x" * limit}}
    assert_error(client.post("/api/v1/workflows/signup", json=big), 413, "payload_too_large")


def test_max_content_length_is_configurable(make_app):
    small = make_app(max_content_length=200).test_client()
    payload = signup_input(name="y" * 150)
    assert_error(start(small, "signup", payload), 413, "payload_too_large")
    assert start(small, "signup", signup_input()).status_code == 202
