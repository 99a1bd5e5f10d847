"""POST /api/v1/workflows/<run_id>/retry and /cancel: 202 + run, 409 when illegal."""

from __future__ import annotations

from tests.api.conftest import assert_error, signup_input, start


def test_cancel_a_pending_run_answers_202_with_the_cancelled_run(client):
    run = start(client, "signup", signup_input()).get_json()
    response = client.post(f"/api/v1/workflows/{run['id']}/cancel")
    assert response.status_code == 202
    cancelled = response.get_json()
    assert (cancelled["id"], cancelled["status"]) == (run["id"], "cancelled")
    assert cancelled["finished_at"] is not None
    assert len(cancelled["steps"]) == 5
    assert client.get(f"/api/v1/workflows/{run['id']}").get_json()["status"] == "cancelled"


def test_cancel_a_finished_run_is_409(client):
    run = start(client, "signup", signup_input()).get_json()
    client.post(f"/api/v1/workflows/{run['id']}/cancel")
    error = assert_error(
        client.post(f"/api/v1/workflows/{run['id']}/cancel"), 409, "illegal_transition"
    )
    assert error["details"] == {"status": "cancelled", "action": "cancel"}


def test_retry_a_cancelled_run_answers_202_with_the_pending_run(client):
    run = start(client, "signup", signup_input()).get_json()
    client.post(f"/api/v1/workflows/{run['id']}/cancel")
    response = client.post(f"/api/v1/workflows/{run['id']}/retry")
    assert response.status_code == 202
    retried = response.get_json()
    assert (retried["id"], retried["status"], retried["finished_at"]) == (
        run["id"],
        "pending",
        None,
    )


def test_retry_a_run_that_is_not_failed_or_cancelled_is_409(client):
    run = start(client, "signup", signup_input()).get_json()
    error = assert_error(
        client.post(f"/api/v1/workflows/{run['id']}/retry"), 409, "illegal_transition"
    )
    assert error["details"] == {"status": "pending", "action": "retry"}


def test_retry_and_cancel_of_an_unknown_run_are_404(client):
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(client.post(f"/api/v1/workflows/{missing}/retry"), 404, "run_not_found")
    assert_error(client.post(f"/api/v1/workflows/{missing}/cancel"), 404, "run_not_found")


def test_retry_and_cancel_accept_no_body_and_ignore_a_json_one(client):
    run = start(client, "signup", signup_input()).get_json()
    response = client.post(f"/api/v1/workflows/{run['id']}/cancel", json={"reason": "test"})
    assert response.status_code == 202


def test_get_on_retry_or_cancel_is_405_in_the_error_shape(client):
    run = start(client, "signup", signup_input()).get_json()
    response = client.get(f"/api/v1/workflows/{run['id']}/cancel")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
