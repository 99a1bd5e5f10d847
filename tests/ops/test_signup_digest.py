"""The scheduled example: one day's signups, counted and sent to the team."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from app.engine.registry import registry
from tests.e2e.conftest import wait_status
from tests.ops.conftest import json_lines
from tests.support.polling import wait_for


@pytest.fixture
def digest_registered():  # type: ignore[no-untyped-def]
    """The session's own registry lists only the test workflows; add the digest here."""
    registry.load(["app.workflows.signup_digest"])
    from app.workflows.signup_digest import signup_digest

    registry.add(signup_digest)
    yield
    registry.remove("signup_digest")


def test_digest_counts_the_24_hours_before_its_slot_and_notifies_the_team(
    manager, ops_worker, engine, digest_registered
):
    tag = uuid.uuid4().hex[:6]
    with engine.begin() as c:  # a day of our own, far from any other test's signups
        for email, plan, created in (
            (f"a-{tag}@old.test", "free", "2001-02-02 23:59:59+00"),
            (f"b-{tag}@old.test", "pro", "2001-02-02 00:00:00+00"),
            (f"c-{tag}@old.test", "pro", "2001-02-02 12:00:00+00"),
            (f"d-{tag}@old.test", "free", "2001-02-03 00:00:00+00"),  # the next day
            (f"e-{tag}@old.test", "free", "2001-02-01 23:59:59+00"),  # the day before
        ):
            c.execute(
                sa.text("INSERT INTO users (id, email, name, plan, created_at) "
                        "VALUES (gen_random_uuid(), :e, 'old', :p, :t)"),
                {"e": email, "p": plan, "t": created},
            )
    started = manager.start(
        "signup_digest", {"scheduled_for": "2001-02-03T00:00:00Z"}, idempotency_key=f"t-{tag}"
    )
    run = wait_status(manager, started.run["id"], "succeeded", "failed")
    assert run["status"] == "succeeded", run["error"]
    counts = run["output"]["count_signups"]
    assert (counts["total"], counts["by_plan"]) == (3, {"free": 1, "pro": 2})
    text = run["output"]["notify_team"]["text"]
    assert text == (
        "Signups from 2001-02-02T00:00:00+00:00 to 2001-02-03T00:00:00+00:00: 3 (1 free, 2 pro)"
    )
    wait_for(
        lambda: any(
            line.get("event") == "team notification (console)" and line.get("text") == text
            and line.get("run_id") == str(run["id"])
            for line in json_lines(ops_worker.output())
        ),
        timeout=10,
        what="the team notification",
    )


def test_a_redelivered_digest_notification_posts_once(engine, webhook):
    """Issue 12 item 10: the digest's post went through the delivery guard only in signup."""
    from app.engine import StepContext
    from app.settings import get_settings, set_settings
    from app.workflows.signup_digest import notify_team

    run_id = uuid.uuid4()
    with engine.begin() as c:
        c.execute(sa.text(
            "INSERT INTO workflow_runs (id, name, status, input, created_at, updated_at) "
            "VALUES (:id, 'signup_digest', 'running', '{}', now(), now())"
        ), {"id": run_id})
    tag = uuid.uuid4().hex[:8]
    ctx = StepContext(
        run_id=run_id, workflow="signup_digest", step="notify_team", position=1, attempt=1,
        input={}, outputs={"count_signups": {
            "since": f"from-{tag}", "until": "b", "total": 0, "by_plan": {}
        }},
    )
    before = get_settings()
    set_settings(before.override(notify_webhook_url=f"{webhook.url}/hooks/digest"))
    try:
        first = notify_team(ctx)
        again = notify_team(ctx)  # the worker died before the checkpoint: the step runs again
    finally:
        set_settings(before)
    assert len(webhook.requests(tag)) == 1
    assert (first["replayed"], again["replayed"]) == (False, True)
