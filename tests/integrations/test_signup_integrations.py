"""The signup workflow on a real worker, its providers pointed at local fakes.

Each test tags its signup with a unique token (in the email address) and
reads only the requests that carry it, so tests share one worker and fakes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import wait_status
from tests.support.fakes.http import Reply
from tests.support.fakes.providers import SENDGRID_KEY, STRIPE_KEY
from tests.support.polling import wait_for
from tests.support.processes import Worker
from tests.support.provider_schemas import violations

WEBHOOK_PATH = "/services/T0000/B0000/hook-secret-path"
INTEGRATION_TIMEOUT = 1.0
STEP_TIMEOUT = 4.0


@pytest.fixture(scope="module")
def worker(database, sendgrid, stripe_api, webhook) -> Iterator[Worker]:
    w = Worker(
        concurrency=2,
        env={
            "SENDGRID_API_KEY": SENDGRID_KEY,
            "SENDGRID_API_HOST": sendgrid.url,
            "STRIPE_API_KEY": STRIPE_KEY,
            "STRIPE_API_BASE": stripe_api.url,
            "NOTIFY_WEBHOOK_URL": webhook.url + WEBHOOK_PATH,
            "EMAIL_FROM": "welcome@stepwise.test",
            "INTEGRATION_TIMEOUT": str(INTEGRATION_TIMEOUT),
            "WORKFLOW_STEP_TIMEOUT": str(STEP_TIMEOUT),
            "WORKFLOW_RETRY_ATTEMPTS": "3",
            "WORKFLOW_RETRY_DELAY": "0.2",
        },
    ).start()
    yield w
    w.stop()


def signup(manager: Any, plan: str = "free") -> tuple[str, str, uuid.UUID]:
    token = uuid.uuid4().hex[:12]
    email = f"user-{token}@example.com"
    started = manager.start("signup", {"email": email, "name": f"Ada {token}", "plan": plan})
    return token, email, started.run["id"]


def step(run: dict, name: str) -> dict:
    return next(s for s in run["steps"] if s["name"] == name)


def deliveries(engine: sa.Engine, run_id: uuid.UUID) -> list[tuple[str, str]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(
            sa.text("SELECT channel, provider FROM deliveries WHERE run_id = :r ORDER BY channel"),
            {"r": run_id},
        )]


def test_pro_signup_creates_one_stripe_customer_sends_one_email_and_one_post(
    manager, worker, engine, sendgrid, stripe_api, webhook
):
    token, email, run_id = signup(manager, plan="pro")
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]

    [customer] = stripe_api.requests(token)
    assert customer.path == "/v1/customers"
    assert customer.headers["authorization"] == f"Bearer {STRIPE_KEY}"
    assert customer.headers["idempotency-key"] == f"{run_id}:provision_plan"
    assert customer.form()["email"] == email
    assert step(run, "provision_plan")["output"]["customer_id"] == customer_id_of(stripe_api, token)

    [mail] = sendgrid.requests(token)
    assert mail.headers["authorization"] == f"Bearer {SENDGRID_KEY}"
    body = mail.json()
    assert body["personalizations"][0]["to"] == [{"email": email}]
    assert body["from"] == {"email": "welcome@stepwise.test"}
    assert body["subject"] == f"Welcome to Stepwise, Ada {token}!"
    assert "your pro account is ready" in body["content"][0]["value"]
    assert body["personalizations"][0]["custom_args"] == {
        "stepwise_idempotency_key": f"{run_id}:send_welcome_email"
    }
    assert violations("sendgrid_mail_send", body) == []

    [post] = webhook.requests(token)
    assert post.path == WEBHOOK_PATH
    # Slack's escaping: the address shows in angle brackets, not as Slack markup
    assert post.json() == {"text": f"New signup: Ada {token} &lt;{email}&gt; (pro)"}
    assert deliveries(engine, run_id) == [("chat", "slack"), ("email", "sendgrid")]


def customer_id_of(stripe_api, token: str) -> str:
    [seen] = stripe_api.requests(token)
    return stripe_api.respond(seen).body["id"]  # the fake replays by idempotency key


def test_sendgrid_500_then_202_is_retried_and_succeeds(manager, worker, engine, sendgrid):
    token, email, run_id = signup(manager)
    sendgrid.plan(token, Reply(500, {"errors": [{"message": "internal error"}]}))
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    assert step(run, "send_welcome_email")["attempts"] == 2
    sent = sendgrid.requests(token)
    assert len(sent) == 2 and sent[0].body == sent[1].body
    assert deliveries(engine, run_id) == [("chat", "slack"), ("email", "sendgrid")]


def test_sendgrid_400_fails_the_run_at_once_with_its_message_and_no_key(
    manager, worker, sendgrid, webhook
):
    token, email, run_id = signup(manager)
    sendgrid.plan(token, Reply(400, {"errors": [
        {"message": f"Does not contain a valid address (key {SENDGRID_KEY})", "field": "to"}
    ]}))
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "failed"
    assert run["error"] == {
        "type": "IntegrationRejected",
        "message": "sendgrid answered 400: Does not contain a valid address (key [redacted])",
        "step": "send_welcome_email",
        "attempt": 1,
        "retryable": False,
    }
    assert step(run, "send_welcome_email")["attempts"] == 1
    assert len(sendgrid.requests(token)) == 1
    assert step(run, "notify_team")["status"] == "pending" and not webhook.requests(token)


def test_sendgrid_429_retry_after_2_delays_the_next_attempt_by_2_seconds(
    manager, worker, sendgrid
):
    token, email, run_id = signup(manager)
    sendgrid.plan(token, Reply(429, {"errors": [{"message": "too many requests"}]},
                               {"Retry-After": "2"}))
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    first, second = sendgrid.requests(token)
    assert second.at - first.at >= 2.0  # not the 0.2 s of WORKFLOW_RETRY_DELAY


def test_sendgrid_that_never_answers_times_out_within_the_step_limit_and_retries(
    manager, worker, sendgrid
):
    token, email, run_id = signup(manager)
    sendgrid.plan(token, Reply(0, hang=True))
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    assert step(run, "send_welcome_email")["attempts"] == 2
    first, second = sendgrid.requests(token)
    assert INTEGRATION_TIMEOUT <= second.at - first.at < STEP_TIMEOUT


def test_redelivered_email_step_after_a_successful_send_sends_nothing(
    manager, worker, sendgrid
):
    from workers import app as celery_app

    token, email, run_id = signup(manager)
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    result = celery_app.send_task("signup.send_welcome_email", args=(str(run_id),))
    wait_for(lambda: f"[{result.id}] succeeded" in worker.output(), timeout=20,
             what="the redelivered step to finish")
    assert len(sendgrid.requests(token)) == 1
    assert manager.get(run_id)["status"] == "succeeded"


def test_lost_checkpoint_with_a_delivery_record_does_not_send_again(
    manager, worker, engine, sendgrid, webhook
):
    from workers import app as celery_app

    token, email, run_id = signup(manager)
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    sent_id = step(run, "send_welcome_email")["output"]["message_id"]
    # as if the worker died after the sends but before their checkpoints
    with engine.begin() as c:
        c.execute(sa.text("UPDATE workflow_runs SET status = 'running', finished_at = NULL, "
                          "output = NULL WHERE id = :r"), {"r": run_id})
        c.execute(sa.text("UPDATE workflow_steps SET status = 'pending', output = NULL, "
                          "finished_at = NULL WHERE run_id = :r AND position >= 2"), {"r": run_id})
    celery_app.send_task("signup.send_welcome_email", args=(str(run_id),))
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    email_step = step(run, "send_welcome_email")
    assert email_step["attempts"] == 2
    assert email_step["output"] == {"message_id": sent_id, "to": email, "replayed": True}
    assert step(run, "notify_team")["output"] == {"notified": True, "replayed": True}
    assert len(sendgrid.requests(token)) == 1
    assert len(webhook.requests(token)) == 1
