"""Designed workflows run end to end by a real worker process: every block, the
durable waits, conditions, versions kept by their runs, and http_request's host rule.

The test acts as the sweep (``manager.recover()``) where beat would, as the
other end-to-end tests do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from tests.designer.conftest import definition, mail, save, unique
from tests.e2e.test_primitives import settle
from tests.support.fakes.providers import STRIPE_KEY
from tests.support.fakes.twilio import TWILIO_NUMBER, TWILIO_SID, TWILIO_TOKEN
from tests.support.polling import wait_for
from tests.support.processes import Worker


@pytest.fixture(scope="module")
def worker(database: str, twilio_api: Any, stripe_api: Any) -> Iterator[Worker]:
    """SMS goes to the Twilio fake and billing to the Stripe fake, email and chat to
    the console: each block runs through the integration a deployment configures."""
    w = Worker(concurrency=2, env={
        "HTTP_ACTION_ALLOWED_HOSTS": "127.0.0.1",
        "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM": TWILIO_NUMBER, "TWILIO_API_BASE": twilio_api.url,
        "STRIPE_API_KEY": STRIPE_KEY, "STRIPE_API_BASE": stripe_api.url,
    }).start()
    yield w
    w.stop()


@pytest.fixture
def local_api() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def waiting(manager: Any, run_id: Any, step_name: str) -> None:
    def there() -> bool:
        manager.recover()
        return step(manager.get(run_id), step_name)["status"] == "waiting"

    wait_for(there, timeout=30, interval=0.2, what=f"{step_name} to wait")


def step(run: dict, name: str) -> dict:
    return next(s for s in run["steps"] if s["name"] == name)


def deliveries(engine: sa.Engine, run_id: Any) -> list[str]:
    with engine.connect() as c:
        return list(c.execute(
            sa.text("SELECT channel FROM deliveries WHERE run_id = :r ORDER BY channel"),
            {"r": run_id},
        ).scalars())


def start(client: Any, name: str, payload: dict) -> dict:
    response = client.post(f"/api/v1/workflows/{name}", json={"input": payload})
    assert response.status_code == 202, response.get_json()
    return dict(response.get_json())


def test_a_designed_workflow_sends_waits_for_a_signal_sleeps_and_skips(
    client, manager, engine, worker
):
    name = unique()
    saved = save(client, definition(name, [
        mail("welcome"),
        {"name": "confirm", "action": "wait_for_signal", "after": ["welcome"],
         "params": {"signal": "confirmed", "timeout": 120}},
        {"name": "remind", "action": "send_sms", "after": ["confirm"],
         "when": {"path": "steps.confirm.timed_out", "equals": True},
         "params": {"to": "+14155550100", "body": "please confirm"}},
        {"name": "pause", "action": "sleep", "after": ["confirm"], "params": {"seconds": 1}},
        {"name": "tell_team", "action": "notify_chat", "after": ["pause", "remind"],
         "params": {"text": "{{ input.email }} confirmed by {{ steps.confirm.by }}"}},
    ]))
    assert saved.status_code == 201, saved.get_json()
    run = start(client, name, {"email": "ada@example.com", "name": "Ada"})
    waiting(manager, run["id"], "confirm")
    delivered = client.post(f"/api/v1/workflows/{run['id']}/signals/confirmed",
                            json={"payload": {"by": "ada"}})
    assert delivered.status_code == 202, delivered.get_json()
    done = settle(manager, run["id"])
    assert done["status"] == "succeeded", done["error"]
    statuses = {s["name"]: s["status"] for s in done["steps"]}
    assert statuses == {"welcome": "succeeded", "confirm": "succeeded", "remind": "skipped",
                        "pause": "succeeded", "tell_team": "succeeded"}
    assert step(done, "welcome")["output"]["to"] == "ada@example.com"
    assert step(done, "confirm")["output"] == {"by": "ada"}
    assert step(done, "pause")["kind"] == "sleep" and step(done, "confirm")["kind"] == "signal"
    assert deliveries(engine, run["id"]) == ["chat", "email"]  # once each, no SMS
    # the run page shows it like any other
    page = client.get(f"/runs/{run['id']}")
    assert page.status_code == 200 and name in page.get_data(as_text=True)
    assert f'/designer?name={name}">version 1</a>' in page.get_data(as_text=True)


def test_send_sms_texts_through_twilio_and_a_reusable_code_block_bills_through_stripe(
    client, manager, engine, worker, twilio_api, stripe_api
):
    name = unique()
    token = name.split("_")[-1]
    saved = save(client, {
        "name": name, "input_schema": {"type": "object", "required": ["email", "name", "phone"],
                                       "properties": {"email": {"type": "string"},
                                                      "name": {"type": "string"},
                                                      "phone": {"type": "string"}}},
        "steps": [
            {"name": "bill", "action": "create_billing_customer",
             "params": {"email": "{{ input.email }}", "name": "{{ input.name }}"}},
            {"name": "text", "action": "send_sms", "after": ["bill"],
             "params": {"to": "{{ input.phone }}",
                        "body": "Hi {{ input.name }}, your account {{ steps.bill.customer_id }}"}},
        ],
    })
    assert saved.status_code == 201, saved.get_json()
    run = start(client, name, {"email": f"{token}@example.com", "name": f"Ada {token}",
                               "phone": "+14155550123"})
    done = settle(manager, run["id"])
    assert done["status"] == "succeeded", done["error"]

    [customer] = stripe_api.requests(token)
    assert customer.path == "/v1/customers"
    assert customer.headers["idempotency-key"] == f"{run['id']}:bill"
    assert customer.form()["email"] == f"{token}@example.com"
    customer_id = stripe_api.respond(customer).body["id"]
    assert step(done, "bill")["output"] == {"customer_id": customer_id}

    [sms] = twilio_api.requests(token)
    form = sms.form()
    assert (form["To"], form["From"]) == ("+14155550123", TWILIO_NUMBER)
    assert form["Body"] == f"Hi Ada {token}, your account {customer_id}"
    sid = twilio_api.respond(sms).body["sid"]
    assert step(done, "text")["output"] == {"message_id": sid, "to": "+14155550123",
                                            "replayed": False}
    assert deliveries(engine, run["id"]) == ["sms"]


def test_a_signal_wait_that_times_out_takes_the_other_branch(client, manager, engine, worker):
    name = unique()
    save(client, definition(name, [
        {"name": "confirm", "action": "wait_for_signal", "params": {"signal": "ok", "timeout": 1}},
        {"name": "remind", "action": "send_sms", "after": ["confirm"],
         "when": {"path": "steps.confirm.timed_out", "equals": True},
         "params": {"to": "+14155550100", "body": "please confirm {{ input.email }}"}},
    ]))
    run = start(client, name, {"email": "bob@example.com"})
    done = settle(manager, run["id"])
    assert done["status"] == "succeeded", done["error"]
    assert step(done, "confirm")["output"] == {"timed_out": True}
    assert step(done, "remind")["status"] == "succeeded"
    assert deliveries(engine, run["id"]) == ["sms"]


def test_a_run_keeps_its_version_when_a_new_one_is_saved(client, manager, engine, worker):
    name = unique()
    wait = {"name": "hold", "action": "wait_for_signal", "params": {"signal": "go"}}
    save(client, definition(name, [wait, mail("final", after=["hold"])]))
    first = start(client, name, {"email": "v1@example.com"})
    waiting(manager, first["id"], "hold")
    v2 = save(client, definition(name, [
        {**wait, "params": {"signal": "proceed"}},
        {"name": "final", "action": "notify_chat", "after": ["hold"], "params": {"text": "v2"}},
        {"name": "extra", "action": "sleep", "after": ["final"], "params": {"seconds": 0}},
    ]))
    assert v2.get_json()["version"] == 2
    # the old run still takes its own version's signal, not the new one's
    refused = client.post(f"/api/v1/workflows/{first['id']}/signals/proceed", json={})
    assert refused.status_code == 422
    client.post(f"/api/v1/workflows/{first['id']}/signals/go", json={})
    done = settle(manager, first["id"])
    assert done["status"] == "succeeded", done["error"]
    assert [s["name"] for s in done["steps"]] == ["hold", "final"]
    assert set(step(done, "final")["output"]) == {"message_id", "to", "replayed"}  # v1: an email
    second = start(client, name, {"email": "v2@example.com"})
    client.post(f"/api/v1/workflows/{second['id']}/signals/proceed", json={})
    done2 = settle(manager, second["id"])
    assert done2["status"] == "succeeded", done2["error"]
    assert [s["name"] for s in done2["steps"]] == ["hold", "final", "extra"]
    assert step(done2, "final")["output"]["notified"] is True
    with engine.connect() as c:
        versions = dict(c.execute(sa.text(
            "SELECT id::text, definition_version FROM workflow_runs WHERE name = :n"
        ), {"n": name}).all())
    assert versions == {str(first["id"]): 1, str(second["id"]): 2}
    # and the API says so, for the operator reading a run
    assert client.get(f"/api/v1/workflows/{first['id']}").get_json()["definition_version"] == 1
    assert first["definition_version"] == 1 and second["definition_version"] == 2


def test_http_request_calls_an_allowed_host(client, manager, worker, local_api):
    local_api.expect_oneshot_request("/hook", method="POST").respond_with_json({"ticket": 42})
    name = unique()
    save(client, {
        "name": name, "input_schema": {"type": "object", "properties": {
            "url": {"type": "string"}, "email": {"type": "string"}}},
        "steps": [
            {"name": "call", "action": "http_request", "params": {
                "method": "POST", "url": "{{ input.url }}",
                "json": {"email": "{{ input.email }}", "note": "for {{ input.email }}"}}},
            {"name": "note", "action": "notify_chat", "after": ["call"],
             "params": {"text": "ticket {{ steps.call.json.ticket }}"}},
        ],
    })
    run = start(client, name, {"url": local_api.url_for("/hook"), "email": "c@example.com"})
    done = settle(manager, run["id"])
    assert done["status"] == "succeeded", done["error"]
    assert step(done, "call")["output"]["status"] == 200
    assert step(done, "call")["output"]["json"] == {"ticket": 42}
    (request, _), = local_api.log
    assert request.get_json() == {"email": "c@example.com", "note": "for c@example.com"}
    assert request.headers["Idempotency-Key"] == f"{run['id']}:call"


def test_http_request_to_a_host_not_allowed_fails_at_once_without_calling_it(
    client, manager, worker, local_api
):
    name = unique()
    save(client, {
        "name": name, "input_schema": {"type": "object", "properties": {"url": {"type": "string"}}},
        "steps": [{"name": "call", "action": "http_request", "params": {"url": "{{ input.url }}"}}],
    })
    # the same server by another name: localhost is not listed, 127.0.0.1 is
    url = f"http://localhost:{local_api.port}/hook"
    done = settle(manager, start(client, name, {"url": url})["id"])
    assert done["status"] == "failed"
    assert done["error"]["type"] == "HostNotAllowed"
    assert step(done, "call")["attempts"] == 1
    assert local_api.log == []
