"""The bundled ``onboarding`` workflow, end to end with a real worker, on the
test settings ONBOARDING_REMINDER_AFTER=2, ONBOARDING_VERIFY_TIMEOUT=4,
ONBOARDING_FOLLOWUP_AFTER=1 (seconds); the test sweeps as beat would."""

from __future__ import annotations

import uuid

import pytest

from app.settings import ConfigError, load_settings
from tests.e2e.test_primitives import settle, step
from tests.support.polling import wait_for


def start(manager) -> uuid.UUID:
    email = f"onb-{uuid.uuid4().hex[:8]}@example.com"
    return manager.start("onboarding", {"email": email, "name": "Ada"}).run["id"]


def statuses(run: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in run["steps"]}


def test_verified_at_once_activates_notifies_sleeps_and_follows_up(manager, worker):
    run_id = start(manager)
    wait_for(lambda: step(manager.get(run_id), "wait_for_verification")["status"] == "waiting",
             timeout=30, what="the first wait")
    manager.signal(run_id, "email_verified", {"clicked": True})
    run = settle(manager, run_id, timeout=60)
    assert run["status"] == "succeeded", run["error"]
    assert run["output"]["verified"] is True
    assert statuses(run) == {
        "send_verification_email": "succeeded",
        "wait_for_verification": "succeeded",
        "send_reminder": "skipped",
        "wait_after_reminder": "skipped",
        "send_activation_email": "succeeded",
        "notify_team": "succeeded",
        "wait_before_followup": "succeeded",
        "send_followup_email": "succeeded",
    }


def test_verified_after_the_reminder(manager, worker):
    run_id = start(manager)
    wait_for(lambda: (manager.recover() or True) and
             step(manager.get(run_id), "wait_after_reminder")["status"] == "waiting",
             timeout=40, interval=0.2, what="the reminder and the second wait")
    manager.signal(run_id, "email_verified", {})
    run = settle(manager, run_id, timeout=60)
    assert run["output"]["verified"] is True
    assert step(run, "send_reminder")["status"] == "succeeded"
    assert step(run, "send_followup_email")["status"] == "succeeded"


def test_never_verified_skips_the_rest_and_succeeds_unverified(manager, worker):
    run_id = start(manager)
    run = settle(manager, run_id, timeout=60)
    assert run["status"] == "succeeded"
    assert run["output"]["verified"] is False
    assert step(run, "wait_after_reminder")["output"] == {"timed_out": True}
    for later in ("send_activation_email", "notify_team", "wait_before_followup",
                  "send_followup_email"):
        assert step(run, later)["status"] == "skipped"


@pytest.mark.parametrize("env, variable", [
    ({"ONBOARDING_REMINDER_AFTER": "soon"}, "ONBOARDING_REMINDER_AFTER"),
    ({"ONBOARDING_FOLLOWUP_AFTER": "-1"}, "ONBOARDING_FOLLOWUP_AFTER"),
    ({"ONBOARDING_REMINDER_AFTER": "10", "ONBOARDING_VERIFY_TIMEOUT": "5"},
     "ONBOARDING_VERIFY_TIMEOUT"),
])
def test_invalid_onboarding_settings_fail_at_start_naming_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        load_settings(env)
