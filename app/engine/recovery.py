"""Recovery: re-send runs that stopped moving, dead-letter the ones that keep
crashing, and delete finished runs past their retention.

Part of ``WorkflowManager`` (mixed in), kept apart because it is the one place
that acts on runs nobody is currently driving.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.engine import checkpoints
from app.engine.errors import RecoveryLimitExceeded, StepNotFound, structured_error
from app.engine.models import runs, steps
from app.engine.registry import Registry
from app.engine.states import StepStatus

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    resent: list[uuid.UUID] = field(default_factory=list)
    dead_lettered: list[uuid.UUID] = field(default_factory=list)
    failed_missing_step: list[uuid.UUID] = field(default_factory=list)


class RecoveryMixin:
    engine: Engine
    registry: Registry
    recovery_grace: float
    recovery_limit: int
    send: Callable[[uuid.UUID, str, int], bool]

    def recover(self, *, batch: int = 500) -> RecoveryReport:
        """Re-send runs that stopped moving; dead-letter runs that keep crashing.

        Candidates: active runs untouched for ``recovery_grace`` seconds whose
        first unfinished step is pending, retrying and due, or running with an
        expired lease. Rows are locked with SKIP LOCKED so concurrent sweeps
        split the work instead of doubling it; duplicates that still happen
        are absorbed by the claim rule.
        """
        report = RecoveryReport()
        to_send: list[tuple[uuid.UUID, str, int]] = []
        with self.engine.begin() as c:
            candidates = c.execute(
                sa.text(
                    """
                    SELECT r.id, r.name, r.recovery_count FROM workflow_runs r
                    WHERE r.status IN ('pending', 'running')
                      AND r.updated_at < now() - make_interval(secs => :grace)
                      AND NOT EXISTS (
                          SELECT 1 FROM workflow_steps s WHERE s.run_id = r.id AND (
                              (s.status = 'running' AND s.lease_expires_at > now())
                           OR (s.status = 'retrying' AND s.next_attempt_at > now())))
                    ORDER BY r.updated_at
                    LIMIT :batch
                    FOR UPDATE OF r SKIP LOCKED
                    """
                ),
                {"grace": self.recovery_grace, "batch": batch},
            ).all()
            for run in candidates:
                action = self._recover_run(c, run.id, run.name, run.recovery_count, report)
                if action is not None:
                    to_send.append(action)
        for run_id, name, position in to_send:
            self.send(run_id, name, position)
        if report.resent or report.dead_lettered or report.failed_missing_step:
            log.warning(
                "recovery sweep: resent=%d dead_lettered=%d missing_step=%d",
                len(report.resent),
                len(report.dead_lettered),
                len(report.failed_missing_step),
            )
        return report

    def _recover_run(
        self,
        c: Connection,
        run_id: uuid.UUID,
        name: str,
        recovery_count: int,
        report: RecoveryReport,
    ) -> tuple[uuid.UUID, str, int] | None:
        first = c.execute(
            sa.select(
                steps.c.position,
                steps.c.name,
                steps.c.status,
                steps.c.attempts,
                (steps.c.lease_expires_at < sa.func.now()).label("expired"),
            )
            .where(steps.c.run_id == run_id, steps.c.status != StepStatus.SUCCEEDED.value)
            .order_by(steps.c.position)
            .limit(1)
        ).first()
        if first is None:
            return None  # every step succeeded; the last checkpoint finishes the run
        workflow = self.registry.find(name)
        definition = workflow.step_at(first.position) if workflow else None
        if definition is None or definition.name != first.name:
            exc = StepNotFound(
                f"workflow {name!r} has no step {first.name!r} at position {first.position} "
                "in the deployed code; the run cannot continue"
            )
            checkpoints.fail(
                c, run_id, first.position, None,
                structured_error(exc, step=first.name, attempt=first.attempts, retryable=False),
            )
            report.failed_missing_step.append(run_id)
            return None
        if first.status == StepStatus.RUNNING.value:
            # its lease expired: the worker died, was killed, or hung past its limit
            if recovery_count >= self.recovery_limit:
                self._dead_letter(
                    c, run_id, first.position, first.name, first.attempts, recovery_count, None
                )
                report.dead_lettered.append(run_id)
                return None
            c.execute(
                steps.update()
                .where(
                    steps.c.run_id == run_id,
                    steps.c.position == first.position,
                    steps.c.status == StepStatus.RUNNING.value,
                )
                .values(
                    status=StepStatus.RETRYING.value,
                    next_attempt_at=sa.func.now(),
                    lease_owner=None,
                    lease_expires_at=None,
                    error={
                        "type": "WorkerLost",
                        "message": "the step's lease expired before it finished",
                        "step": first.name,
                        "attempt": first.attempts,
                        "retryable": True,
                    },
                )
            )
            recovery_count += 1
        elif first.status == StepStatus.FAILED.value:
            return None
        c.execute(
            runs.update()
            .where(runs.c.id == run_id)
            .values(recovery_count=recovery_count, updated_at=sa.func.now())
        )
        report.resent.append(run_id)
        return run_id, name, int(first.position)

    def take_over_dead_lease(
        self, run_id: uuid.UUID, position: int, step_name: str, holder: str, attempt: int
    ) -> bool:
        """A step's lease holder is known dead: end its lease so the step can be claimed.

        The claim that follows counts the recovery; at the recovery limit the
        run is dead-lettered here instead, so a step that kills its worker
        every time does not loop. Returns whether the step may be claimed again.
        """
        with self.engine.begin() as c:
            count = c.execute(
                sa.select(runs.c.recovery_count).where(runs.c.id == run_id).with_for_update()
            ).scalar()
            if count is None:
                return False
            if count >= self.recovery_limit:
                self._dead_letter(c, run_id, position, step_name, attempt, count, holder)
                return False
            return checkpoints.expire_lease(c, run_id, position, holder)

    def _dead_letter(
        self,
        conn: Connection,
        run_id: uuid.UUID,
        position: int,
        step_name: str,
        attempt: int,
        recoveries: int,
        holder: str | None,
    ) -> None:
        """Fail a step (and its run) that keeps losing its worker: a dead letter."""
        exc = RecoveryLimitExceeded(
            f"step {step_name!r} lost its worker {recoveries + 1} times (crash, kill or "
            f"expired lease); giving up after the recovery limit of {self.recovery_limit}"
        )
        checkpoints.fail(
            conn, run_id, position, holder,
            structured_error(exc, step=step_name, attempt=attempt, retryable=False),
        )

    def cleanup(self, retention_seconds: float, *, batch: int = 1000) -> int:
        """Delete finished runs older than the retention, a batch per transaction."""
        total = 0
        while True:
            with self.engine.begin() as c:
                deleted = c.execute(
                    sa.text(
                        """
                        DELETE FROM workflow_runs WHERE id IN (
                            SELECT id FROM workflow_runs
                            WHERE status IN ('succeeded', 'failed', 'cancelled')
                              AND finished_at < now() - make_interval(secs => :retention)
                            ORDER BY finished_at
                            LIMIT :batch
                            FOR UPDATE SKIP LOCKED)
                        """
                    ),
                    {"retention": retention_seconds, "batch": batch},
                ).rowcount
            total += deleted
            if deleted < batch:
                return total
