"""Every line written inside a step is JSON and names its run, workflow, step and attempt."""

from __future__ import annotations

import uuid

from tests.e2e.conftest import wait_status
from tests.ops.conftest import json_lines
from tests.support.polling import wait_for


def test_log_lines_written_inside_a_step_carry_run_id_step_and_attempt_as_json(
    manager, ops_worker
):
    email = f"log-{uuid.uuid4().hex[:8]}@example.com"
    run_id = str(manager.start("signup", {"email": email, "name": "Lo", "plan": "free"}).run["id"])
    assert wait_status(manager, run_id, "succeeded", "failed")["status"] == "succeeded"

    def mine() -> list[dict]:  # type: ignore[type-arg]
        return [line for line in json_lines(ops_worker.output()) if line.get("run_id") == run_id]

    lines = wait_for(
        lambda: (found := mine()) and any(
            line["event"] == "team notification (console)" for line in found
        ) and found,
        timeout=10,
        what="the step's log lines",
    )
    # a line the step function itself wrote (the console notifier), not the protocol
    note = next(line for line in lines if line["event"] == "team notification (console)")
    assert note["workflow"] == "signup"
    assert note["step"] == "notify_team"
    assert note["attempt"] == 1
    assert note["logger"] == "stepwise.chat"
    assert email in note["text"]
    # and every protocol line of every step
    started = [line for line in lines if line["event"] == "step started"]
    assert [line["step"] for line in started] == [
        "create_user", "provision_plan", "send_welcome_email", "notify_team", "send_welcome_sms"
    ]
    assert all(line["attempt"] == 1 and line["workflow"] == "signup" for line in started)
    assert all({"timestamp", "level", "logger"} <= set(line) for line in lines)
