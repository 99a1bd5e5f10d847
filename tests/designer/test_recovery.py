"""A designed run that sleeps and waits for a signal survives its worker being SIGKILLed."""

from __future__ import annotations

import sqlalchemy as sa

from tests.designer.conftest import definition, mail, save, unique
from tests.designer.test_runs import deliveries, settle, start, step, waiting
from tests.support.processes import Worker


def test_a_designed_run_recovers_after_its_worker_is_killed_mid_run(client, manager, engine):
    name = unique()
    save(client, definition(name, [
        mail("welcome"),
        {"name": "nap", "action": "sleep", "after": ["welcome"], "params": {"seconds": 1}},
        {"name": "confirm", "action": "wait_for_signal", "after": ["nap"],
         "params": {"signal": "confirmed", "timeout": 300}},
        mail("done", after=["confirm"]),
    ]))
    first = Worker(concurrency=1).start()
    try:
        run = start(client, name, {"email": "kill@example.com"})
        waiting(manager, run["id"], "confirm")
        first.kill()  # SIGKILL, the whole process group
    finally:
        first.stop()
    # the signal arrives while no worker runs: its message waits in the broker
    assert client.post(f"/api/v1/workflows/{run['id']}/signals/confirmed",
                       json={"payload": {"ok": True}}).status_code == 202
    second = Worker(concurrency=1).start()
    try:
        done = settle(manager, run["id"], timeout=60)
    finally:
        second.stop()
    assert done["status"] == "succeeded", done["error"]
    assert step(done, "confirm")["output"] == {"ok": True}
    assert deliveries(engine, run["id"]) == ["email", "email"]  # each email once
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM deliveries WHERE run_id = :r"),
                         {"r": run["id"]}).scalar() == 2
