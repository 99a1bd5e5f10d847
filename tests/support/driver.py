"""Drive the step protocol in-process, against real Postgres, with no worker.

A ``Driver`` holds its own registry of workflows (declared by the test), a
``WorkflowManager`` over the session's database, and a recording dispatcher:
``sent`` is the broker. ``deliver(run_id, step)`` is one delivery of one
step's message, run through ``app.engine.protocol.execute_step`` exactly as a
worker would, and returns the decision.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from app.engine.definition import Workflow
from app.engine.manager import WorkflowManager
from app.engine.protocol import Action, Attempt, Decision, execute_step
from app.engine.registry import Registry
from app.engine.retry import RetryPolicy


class Driver:
    def __init__(self, engine: sa.Engine, *workflows: Workflow, recovery_limit: int = 3) -> None:
        self.registry = Registry()
        for workflow in workflows:
            self.registry.add(workflow)
            workflow.freeze()
        self.sent: list[tuple[uuid.UUID, str]] = []
        self._lock = threading.Lock()
        self.manager = WorkflowManager(
            engine,
            self.registry,
            default_policy=RetryPolicy(max_attempts=3, initial_delay=0.0, jitter=0.0),
            default_step_timeout=30,
            recovery_grace=0,
            recovery_limit=recovery_limit,
            dispatch=self._record,
        )
        self._owners = 0
        self.name = f"driver@{uuid.uuid4().hex[:8]}"

    def recover(self) -> Any:
        """A sweep, as the beat would run it, with this driver as a live worker.

        The sweep resends only steps some live worker has, and real workers of
        other tests share the table: the driver registers its steps for the
        sweep, then leaves (a lingering row would hide other tests' steps).
        """
        tasks = [step.task_name for wf in self.registry for step in wf.steps]
        self.manager.heartbeat(self.name, tasks)
        try:
            return self.manager.recover()
        finally:
            self.manager.forget_worker(self.name)

    def _record(self, run_id: uuid.UUID, workflow: str, names: Sequence[str]) -> None:
        with self._lock:
            self.sent.extend((run_id, name) for name in names)

    def start(self, name: str, payload: dict[str, Any] | None = None) -> uuid.UUID:
        run_id: uuid.UUID = self.manager.start(name, payload or {}).run["id"]
        # the start's chain goes out from the manager's sender thread: wait for it
        assert self.manager.flush_sends()
        return run_id

    def attempt(self, run_id: uuid.UUID, step: str, workflow: str | None = None) -> Attempt:
        name = workflow or self.manager.get(run_id)["name"]
        definition = self.registry.get(name)
        found = definition.find_step(step)
        assert found is not None, f"{name} has no step {step}"
        self._owners += 1
        return Attempt(
            workflow=definition, step=found, run_id=run_id,
            owner=f"driver:{self._owners}:{uuid.uuid4().hex[:6]}", timeout=30,
        )

    def deliver(self, run_id: uuid.UUID, step: str) -> Decision:
        """One delivery of ``step``'s message (consuming one sent copy, if any), carried
        out as the worker does: what the decision makes ready is sent."""
        with self._lock:
            if (run_id, step) in self.sent:
                self.sent.remove((run_id, step))
        decision = execute_step(self.manager, self.attempt(run_id, step))
        if decision.action in (Action.CONTINUE, Action.FAILED):
            self._record(run_id, "", decision.send)
        return decision

    def drain(self, run_id: uuid.UUID, limit: int = 50) -> list[str]:
        """Deliver the run's sent messages until none is left; the steps delivered, in order."""
        order = []
        for _ in range(limit):
            pending = [name for rid, name in self.sent if rid == run_id]
            if not pending:
                return order
            decision = self.deliver(run_id, pending[0])
            order.append(pending[0])
            if decision.action is Action.LATER and not decision.parked:
                self._record(run_id, "", [pending[0]])
        raise AssertionError(f"run {run_id} did not settle in {limit} deliveries")

    def step(self, run_id: uuid.UUID, name: str) -> dict[str, Any]:
        return next(s for s in self.manager.get(run_id)["steps"] if s["name"] == name)
