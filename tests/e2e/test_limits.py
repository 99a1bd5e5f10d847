"""A workflow's concurrency cap and a step's rate limit, against a real worker with
more pool processes than the cap: excess work waits visibly as pending, is never
dropped, and every run finishes."""

from __future__ import annotations

import uuid

import pytest

from app.engine import Workflow
from app.engine.errors import DefinitionError
from tests.e2e.test_primitives import settle, step
from tests.support.polling import wait_for
from tests.support.processes import Worker
from tests.support.workflows import executions, store


@pytest.fixture(scope="module")
def wide_worker(database: str):  # type: ignore[no-untyped-def]
    w = Worker(concurrency=6).start()
    yield w
    w.stop()


def test_a_capped_workflow_never_executes_more_runs_at_once_and_the_rest_wait_visibly(
    manager, wide_worker
):
    tag = uuid.uuid4().hex[:8]
    gate = uuid.uuid4().hex[:8]
    runs = [manager.start("capped", {"tag": tag, "gate": gate, "hold": 0.05}).run["id"]
            for _ in range(6)]
    # two runs hold the slots (blocked on the gate); the other four are pending and say why
    def waiting() -> list[dict]:
        got = [manager.get(r) for r in runs]
        queued = [r for r in got if step(r, "capped_first")["status"] == "pending"
                  and (step(r, "capped_first")["waiting_for"] or "").startswith("a concurrency slot")]
        return queued if len(queued) == 4 else []

    queued = wait_for(waiting, timeout=30, what="four runs waiting for a slot")
    assert "at most 2 at once" in step(queued[0], "capped_first")["waiting_for"]
    assert int(store().get(f"capped:{tag}:now") or 0) == 2
    store().set(f"gate:{gate}", 1)
    for run_id in runs:
        run = settle(manager, run_id, timeout=60)
        assert run["status"] == "succeeded", run["error"]
        assert all(s["waiting_for"] is None for s in run["steps"])
        assert executions(run_id, "capped_first") == 1 and executions(run_id, "capped_second") == 1
    peaks = [int(p) for p in store().lrange(f"capped:{tag}:peaks", 0, -1)]
    assert len(peaks) == 12 and max(peaks) == 2, peaks


def test_a_rate_limited_step_starts_no_faster_than_its_limit_across_the_pool(
    manager, wide_worker
):
    tag = uuid.uuid4().hex[:8]
    runs = [manager.start("rated", {"tag": tag}).run["id"] for _ in range(8)]
    starts = []
    for run_id in runs:
        run = settle(manager, run_id, timeout=60)
        assert run["status"] == "succeeded", run["error"]
        assert executions(run_id, "call_provider") == 1
        starts.append(step(run, "call_provider")["started_at"])
    starts.sort()
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    # 4 a second: every start at least 0.25 s after the one before (Postgres's clock)
    assert min(gaps) >= 0.25 - 1e-3, gaps
    # and the pool did not sit idle: 8 starts in well under 8 × the spacing plus slack
    assert (starts[-1] - starts[0]).total_seconds() < 7 * 0.25 + 3.0


def test_limits_are_checked_when_the_workflow_is_defined():
    from marshmallow import Schema

    with pytest.raises(DefinitionError, match="max_concurrent_runs must be a positive integer"):
        Workflow("bad_cap", input_schema=Schema, max_concurrent_runs=0, register=False)
    wf = Workflow("bad_rate", input_schema=Schema, register=False)
    with pytest.raises(DefinitionError, match=r"'bad_rate', step 's'.*rate_limit must be a positive"):
        wf.step(name="s", rate_limit=float("inf"))(lambda ctx: {})  # type: ignore[arg-type]
