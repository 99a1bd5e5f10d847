"""The Procfile's Flower: loopback only, basic auth, and step tasks with their run ids."""

from __future__ import annotations

import ast

import httpx
import pytest

from tests.e2e.conftest import wait_status
from tests.ops.conftest import OPS_ENV, free_port, procfile_command
from tests.support.polling import wait_for
from tests.support.processes import Process

CREDENTIALS = ("ops", "s3cret-flower")


@pytest.mark.slow
def test_flower_requires_basic_auth_and_lists_the_step_tasks_that_ran(manager, ops_worker):
    port = free_port()
    flower = Process(
        ["bash", "-c", f"exec {procfile_command('flower')}"],
        env={**OPS_ENV, "FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": ":".join(CREDENTIALS)},
        name="flower",
    ).start()
    base = f"http://127.0.0.1:{port}"
    try:
        def answers() -> httpx.Response | None:
            try:
                return httpx.get(f"{base}/healthcheck", timeout=2)
            except httpx.TransportError:
                assert flower.alive, flower.output()
                return None

        wait_for(answers, timeout=60, what="Flower to listen")
        assert httpx.get(f"{base}/", timeout=5).status_code == 401
        assert httpx.get(f"{base}/api/tasks", timeout=5).status_code == 401
        assert httpx.get(f"{base}/", auth=("ops", "wrong"), timeout=5).status_code == 401
        assert httpx.get(f"{base}/", auth=CREDENTIALS, timeout=5).status_code == 200

        # Flower sees only events sent while it listens: wait until it knows the worker
        wait_for(
            lambda: ops_worker.node in httpx.get(
                f"{base}/api/workers", params={"refresh": "1"}, auth=CREDENTIALS, timeout=10
            ).json(),
            timeout=60,
            what="Flower to see the worker",
        )
        run_id = str(manager.start("flaky", {}).run["id"])
        assert wait_status(manager, run_id, "succeeded", "failed")["status"] == "succeeded"

        def step_tasks() -> dict[str, dict] | None:  # type: ignore[type-arg]
            tasks = httpx.get(f"{base}/api/tasks", auth=CREDENTIALS, timeout=5).json()
            mine = {
                t["name"]: t for t in tasks.values()
                if t.get("args") and list(ast.literal_eval(t["args"])) == [run_id]
            }
            # the worker sends its task events in batches (workers.consumer), so the
            # last step's task-succeeded can reach Flower after Postgres says succeeded
            finished = all(t["state"] in ("SUCCESS", "FAILURE") for t in mine.values())
            return mine if len(mine) == 3 and finished else None

        tasks = wait_for(step_tasks, timeout=30, what="Flower to list the run's step tasks")
        assert set(tasks) == {"flaky.prepare", "flaky.call_api", "flaky.finish"}
        assert all(t["state"] == "SUCCESS" for t in tasks.values())
        assert all(t["worker"] == ops_worker.node for t in tasks.values())
    finally:
        flower.stop()
    assert f"127.0.0.1:{port}" in flower.output()  # Flower logs where it listens
