"""Every attempt of a step on the run page: a step that failed twice and then
succeeded, run by a real worker, shows three attempts — two earlier bars on its
timeline row and a list with each failure's error."""

from __future__ import annotations

import re

from tests.e2e.conftest import wait_status


def test_a_step_that_failed_twice_shows_each_attempt_with_its_error(client, manager, worker):
    run_id = manager.start("flaky", {"fail_times": 2}).run["id"]
    run = wait_status(manager, run_id, "succeeded", "failed", timeout=60)
    assert run["status"] == "succeeded"
    html = client.get(f"/runs/{run_id}").get_data(as_text=True)

    earlier = re.findall(r'class="tl-bar tl-attempt tl-(\w+)" data-attempt="(\d+)"', html)
    assert earlier == [("failed", "1"), ("failed", "2")]
    attempts = html[html.index('class="step-attempts-row" data-step="call_api"'):]
    attempts = attempts[:attempts.index("</ol>")]
    assert re.findall(r'data-attempt="(\d+)"', attempts) == ["1", "2", "3"]
    assert "the API said 503 (attempt 1)" in attempts and "the API said 503 (attempt 2)" in attempts
    # the steps that ran once list no attempts
    assert 'class="step-attempts-row" data-step="prepare"' not in html
