"""The run page of a workflow that waits: its graph, what a waiting step waits
for and until when, and sending a signal from the page."""

from __future__ import annotations

import sqlalchemy as sa

from app.engine.models import steps
from tests.dashboard.test_pages import csrf


def test_a_waiting_step_shows_its_signal_and_deadline_and_the_page_sends_the_signal(
    client, manager, engine
):
    run_id = manager.start("waits", {}).run["id"]
    with engine.begin() as c:  # as the worker leaves it: waiting, with its deadline
        c.execute(steps.update().where(steps.c.run_id == run_id, steps.c.name == "before")
                  .values(status="succeeded", output={"n": 1}))
        c.execute(steps.update().where(steps.c.run_id == run_id, steps.c.name == "wait_go")
                  .values(status="waiting", wake_at=sa.func.now() + sa.text("interval '1 hour'")))
    html = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert 'id="run-graph"' in html and 'data-step="wait_go"' in html
    assert "waiting for signal <code>go</code> until" in html
    assert 'id="signal-form"' in html

    token = csrf(client, f"/runs/{run_id}")
    sent = client.post(f"/runs/{run_id}/signal",
                       data={"csrf_token": token, "signal": "go", "payload": '{"by": "ops"}'})
    assert sent.status_code == 302
    wait_step = next(s for s in manager.get(run_id)["steps"] if s["name"] == "wait_go")
    assert wait_step["status"] == "pending"  # woken: its message is on its way
    with engine.connect() as c:
        payload = c.execute(sa.text(
            "SELECT payload FROM workflow_signals WHERE run_id = :r"), {"r": run_id}).scalar()
    assert payload == {"by": "ops"}


def test_a_bad_payload_or_signal_is_refused_on_the_page(client, manager):
    run_id = manager.start("waits", {}).run["id"]
    token = csrf(client, f"/runs/{run_id}")
    bad = client.post(f"/runs/{run_id}/signal",
                      data={"csrf_token": token, "signal": "go", "payload": "[1"},
                      follow_redirects=True)
    assert "the payload is not valid JSON" in bad.get_data(as_text=True)
    unknown = client.post(f"/runs/{run_id}/signal",
                          data={"csrf_token": token, "signal": "stop", "payload": "{}"},
                          follow_redirects=True)
    assert "declares no signal" in unknown.get_data(as_text=True)


def test_the_workflow_types_page_draws_parallel_branches_side_by_side(client):
    html = client.get("/workflow-types").get_data(as_text=True)
    section = html[html.index('id="workflow-fanout"'):]
    section = section[: section.index("</section>")]
    assert section.count('class="column parallel"') == 1  # left and right together
    assert 'title="Waits for all of: left, right">join' in section


def test_fork_from_a_steps_row_opens_the_new_run(client, manager):
    from app.engine.manager import WorkflowManager

    silent = WorkflowManager(manager.engine, manager.registry, dispatch=None)
    run_id = silent.start("flaky", {}).run["id"]
    silent.cancel(run_id)
    html = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert "fork from here" in html
    token = csrf(client, f"/runs/{run_id}")
    response = client.post(f"/runs/{run_id}/fork", data={"csrf_token": token, "step": "prepare"})
    assert response.status_code == 302
    new_id = response.headers["Location"].rsplit("/", 1)[-1]
    assert new_id != str(run_id)
    forked = manager.get(new_id)
    assert forked["forked_from"] == {"run_id": str(run_id), "step": "prepare"}
    page = client.get(f"/runs/{new_id}").get_data(as_text=True)
    assert "Forked from" in page
