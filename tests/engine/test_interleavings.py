"""Claims, checkpoints, retries, lost workers, cancels, operator retries and sweeps in
every order hypothesis finds, against real Postgres and with no worker process.

The workflow is a diamond (a → b, c → d): parallel branches and a join. Workers
are simulated by holders of claims that checkpoint, fail, or die (their lease
expires); full deliveries run the protocol end to end. After each step of the
interleaving, and once everything has settled:

- no row holds another step's output;
- no step succeeds twice, and the join is made ready at most once per time its
  predecessors finish;
- a succeeded run has every step done;
- every run ends (or keeps a live step or a message) once time passes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from marshmallow import Schema

from app.engine import StepContext, Workflow, transitions
from app.engine.errors import IllegalTransition
from app.engine.models import steps
from tests.support.driver import Driver

STEPS = ("a", "b", "c", "d")


class Empty(Schema):
    pass


def diamond() -> Workflow:
    wf = Workflow(f"diamond_{uuid.uuid4().hex[:8]}", input_schema=Empty, register=False)
    wf.step(name="a")(lambda ctx: {"step": "a"})
    wf.step(name="b", after=["a"])(lambda ctx: {"step": "b"})
    wf.step(name="c", after=["a"])(lambda ctx: {"step": "c"})

    @wf.step(name="d", after=["b", "c"])
    def d(ctx: StepContext) -> dict[str, Any]:
        assert {"b", "c"} <= set(ctx.outputs), "the join ran before its predecessors"
        return {"step": "d"}

    return wf


ENGINE: list[sa.Engine] = []


class Interleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        engine = ENGINE[0]
        self.engine = engine
        self.driver = Driver(engine, diamond())
        self.run_id = self.driver.start(self.driver.registry.__iter__().__next__().name)
        self.holders: dict[str, str] = {}  # owner -> step
        self.successes: Counter[str] = Counter()
        self.n = 0

    # -- simulated workers -----------------------------------------------------------

    @rule(step=st.sampled_from(STEPS))
    def claim(self, step: str) -> None:
        self.n += 1
        owner = f"w{self.n}"
        with self.engine.connect() as c:
            got = transitions.claim(c, self.run_id, step, owner, 30, 10)
            c.commit()
        if isinstance(got, transitions.Claimed):
            self.holders[owner] = step

    def pick_holder(self, i: int) -> tuple[str, str] | None:
        """The i-th holder (draws never depend on state, so examples replay exactly)."""
        if not self.holders:
            return None
        owner = sorted(self.holders)[i % len(self.holders)]
        return owner, self.holders.pop(owner)

    @rule(i=st.integers(0, 7))
    def checkpoint(self, i: int) -> None:
        picked = self.pick_holder(i)
        if picked is None:
            return
        owner, step = picked
        with self.engine.begin() as c:
            advance = transitions.succeed(c, self.run_id, step, owner, {"step": step})
        if advance is not None:
            self.successes[step] += 1
            self.driver.sent.extend((self.run_id, s) for s in advance.send)

    @rule(i=st.integers(0, 7))
    def attempt_fails(self, i: int) -> None:
        picked = self.pick_holder(i)
        if picked is None:
            return
        owner, step = picked
        error = {"type": "X", "message": "503", "step": step, "attempt": 1, "retryable": True}
        with self.engine.begin() as c:
            transitions.schedule_retry(c, self.run_id, step, owner, error, 0.0)
        self.driver.sent.append((self.run_id, step))

    @rule(i=st.integers(0, 7))
    def worker_dies(self, i: int) -> None:
        picked = self.pick_holder(i)  # it never checkpoints; its lease runs out
        if picked is None:
            return
        owner, _ = picked
        with self.engine.begin() as c:
            c.execute(steps.update().where(
                steps.c.run_id == self.run_id, steps.c.lease_owner == owner,
                steps.c.status == "running",
            ).values(lease_expires_at=sa.func.now() - sa.text("interval '1 second'")))

    @rule(i=st.integers(0, 7))
    def deliver(self, i: int) -> None:
        mine = [s for rid, s in self.driver.sent if rid == self.run_id]
        if mine:
            self.driver.deliver(self.run_id, mine[i % len(mine)])

    # -- operators and the sweep ---------------------------------------------------------

    @rule()
    def cancel(self) -> None:
        with contextlib.suppress(IllegalTransition):
            self.driver.manager.cancel(self.run_id)

    @rule()
    def retry(self) -> None:
        with contextlib.suppress(IllegalTransition):
            self.driver.manager.retry(self.run_id)

    @rule()
    def sweep(self) -> None:
        self.driver.recover()

    # -- what must always hold -------------------------------------------------------------

    def rows(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.driver.manager.get(self.run_id)["steps"]}

    @invariant()
    def outputs_belong_to_their_steps(self) -> None:
        for name, row in self.rows().items():
            assert row["output"] in (None, {"step": name}), (name, row["output"])

    @invariant()
    def no_step_succeeds_twice(self) -> None:
        assert all(n <= 1 for n in self.successes.values()), self.successes

    @invariant()
    def a_succeeded_run_has_every_step_done(self) -> None:
        run = self.driver.manager.get(self.run_id)
        if run["status"] == "succeeded":
            assert {s["status"] for s in run["steps"]} == {"succeeded"}

    def teardown(self) -> None:
        """Time passes: leases expire, the sweep runs, messages are delivered."""
        for _ in range(30):
            run = self.driver.manager.get(self.run_id)
            if run["status"] in ("succeeded", "failed", "cancelled"):
                break
            with self.engine.begin() as c:
                c.execute(steps.update().where(
                    steps.c.run_id == self.run_id, steps.c.status == "running"
                ).values(lease_expires_at=sa.func.now() - sa.text("interval '1 second'")))
                c.execute(steps.update().where(
                    steps.c.run_id == self.run_id, steps.c.dispatched_at.is_not(None)
                ).values(dispatched_at=sa.func.now() - sa.text("interval '1 minute'")))
            self.driver.recover()
            self.driver.drain(self.run_id, limit=400)
        run = self.driver.manager.get(self.run_id)
        assert run["status"] in ("succeeded", "failed", "cancelled"), run
        if run["status"] == "succeeded":
            assert run["output"] == {s: {"step": s} for s in STEPS}


def test_every_interleaving_keeps_runs_consistent_and_ending(engine) -> None:
    ENGINE[:] = [engine]
    machine = Interleavings.TestCase
    machine.settings = settings(
        max_examples=20,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine().runTest()
