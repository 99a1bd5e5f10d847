"""Recovery: wake due waits, re-send steps whose message was lost, take over
steps whose worker died, dead-letter the ones that keep crashing, finish runs
left with nothing to do, and delete finished runs past their retention.

Part of ``WorkflowManager`` (mixed in), kept apart because it is the one place
that acts on runs nobody is currently driving.

Candidates are found through partial indexes on what makes a step stuck (an
expired lease, a retry past due, a pending step sent long ago, a wait that is
due), never by walking healthy runs; each is handled in its own short
transaction that locks its run with SKIP LOCKED, so concurrent sweeps split
the work and never block a claim or a checkpoint for long.

A step that no live worker has registered (a rolling deploy, a pool with other
``WORKFLOW_MODULES``) is never failed for it: it waits, with the reason shown
in ``waiting_for``, and is sent again once a worker that has it is seen.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine

from app.engine import transitions
from app.engine.errors import RecoveryLimitExceeded, structured_error
from app.engine.registry import Registry

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    resent: list[uuid.UUID] = field(default_factory=list)
    dead_lettered: list[uuid.UUID] = field(default_factory=list)
    woken: list[uuid.UUID] = field(default_factory=list)
    finished: list[uuid.UUID] = field(default_factory=list)
    waiting_for_worker: list[uuid.UUID] = field(default_factory=list)


# Stuck steps of active runs, each kind through its own partial index. The run
# filter comes before the LIMIT: steps of finished runs never take a place in the
# batch, so they cannot starve the live ones.
_ACTIVE_STEP = (
    "FROM workflow_steps s JOIN workflow_runs r "
    "ON r.id = s.run_id AND r.status IN ('pending', 'running')"
)
_STUCK_WHERE = {
    "lease": "s.status = 'running' AND s.lease_expires_at < now()",
    "retry": (
        "s.status = 'retrying' AND s.next_attempt_at <= now() "
        "AND (s.dispatched_at IS NULL "
        "OR s.next_attempt_at < now() - make_interval(secs => :grace))"
    ),
    "lost": (
        "s.status = 'pending' AND s.dispatched_at IS NOT NULL "
        "AND s.dispatched_at < now() - make_interval(secs => :grace)"
    ),
}
_STUCK_ORDER = {"lease": "lease_expires_at", "retry": "next_attempt_at", "lost": "dispatched_at"}
_STUCK = sa.text(
    "\nUNION ALL\n".join(
        f"(SELECT s.run_id, s.name, '{why}' AS why {_ACTIVE_STEP} WHERE {where} "
        f"ORDER BY s.{_STUCK_ORDER[why]} LIMIT :batch)"
        for why, where in _STUCK_WHERE.items()
    )
)
# The same, counted for /metrics (each count stops at :cap, so a scrape stays cheap).
_AWAITING = sa.text(
    "\nUNION ALL\n".join(
        f"SELECT '{why}' AS why, count(*) AS n FROM "
        f"(SELECT 1 {_ACTIVE_STEP} WHERE {where} LIMIT :cap) AS {why}"
        for why, where in _STUCK_WHERE.items()
    )
)
_RECORD_SWEEP = sa.text(
    """
    INSERT INTO workflow_sweeps AS w (name, finished_at, seconds, resent, dead_lettered)
    VALUES ('recovery', now(), :seconds, :resent, :dead_lettered)
    ON CONFLICT (name) DO UPDATE SET finished_at = excluded.finished_at,
        seconds = excluded.seconds, resent = excluded.resent,
        dead_lettered = excluded.dead_lettered
    """
)
_LAST_SWEEP = sa.text(
    "SELECT extract(epoch FROM now() - finished_at) AS age, seconds "
    "FROM workflow_sweeps WHERE name = 'recovery'"
)


@dataclass(frozen=True)
class RecoveryHealth:
    """What an operator watches: is the sweep running, and is anything left stuck."""

    last_sweep_age: float | None  # seconds since the last sweep ended; None: never
    last_sweep_seconds: float | None
    awaiting: dict[str, int]  # stuck steps by why: lease, retry, lost


def recovery_health(conn: Connection, grace: float, cap: int = 10_000) -> RecoveryHealth:
    last = conn.execute(_LAST_SWEEP).first()
    counts = {row.why: int(row.n) for row in conn.execute(_AWAITING, {"grace": grace, "cap": cap})}
    return RecoveryHealth(
        None if last is None else float(last.age),
        None if last is None else float(last.seconds),
        counts,
    )


# Active runs with no forward step left undone and no compensation under way:
# only an older release (or SQL by hand) leaves one; finish it from its rows. The
# condition has no index, so each sweep examines one slice of the active runs
# older than the grace period (oldest first, resuming where the last sweep of
# this process stopped): its cost stays flat however many healthy runs there
# are, and every active run is examined within a few sweeps.
STRANDED_SLICE = 1000
_STRANDED = sa.text(
    """
    WITH slice AS MATERIALIZED (
        SELECT r.id, r.updated_at, r.error IS NULL AS clean FROM workflow_runs r
        WHERE r.status IN ('pending', 'running')
          AND r.updated_at < now() - make_interval(secs => :grace)
          AND (CAST(:after_at AS timestamptz) IS NULL
               OR (r.updated_at, r.id) > (CAST(:after_at AS timestamptz), :after_id))
        ORDER BY r.updated_at, r.id
        LIMIT :slice
    )
    -- one index probe per run (LATERAL ... LIMIT 1), never a scan of every step
    SELECT s.id, s.updated_at, s.clean AND u.undone IS NULL AS stranded
    FROM slice s
    LEFT JOIN LATERAL (
        SELECT 1 AS undone FROM workflow_steps q
        WHERE q.run_id = s.id AND q.kind <> 'compensation'
          AND q.status NOT IN ('succeeded', 'skipped')
        LIMIT 1
    ) u ON true
    ORDER BY s.updated_at, s.id
    """
).bindparams(sa.bindparam("after_id", type_=sa.Uuid))


_LOCK_RUN = sa.text(
    "SELECT name, status, recovery_count FROM workflow_runs WHERE id = :run_id "
    "FOR NO KEY UPDATE SKIP LOCKED"
).bindparams(sa.bindparam("run_id", type_=sa.Uuid))

_STEP = sa.text(
    """
    SELECT status, attempts, lease_owner,
           lease_expires_at < now() AS expired,
           next_attempt_at <= now() AND (dispatched_at IS NULL
               OR next_attempt_at < now() - make_interval(secs => :grace)) AS retry_due,
           dispatched_at < now() - make_interval(secs => :grace) AS stale
    FROM workflow_steps WHERE run_id = :run_id AND name = :step
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid))

_WORKER_LOST = sa.text(
    """
    UPDATE workflow_steps AS s
    SET status = 'retrying', next_attempt_at = now(), lease_expires_at = NULL,
        dispatched_at = now(), error = CAST(:error AS jsonb),
        history = s.history || jsonb_build_array(jsonb_build_object(
            'attempt', s.attempts, 'status', 'failed', 'error', CAST(:error AS jsonb),
            'started_at', s.started_at, 'finished_at', now()))
    WHERE s.run_id = :run_id AND s.name = :step AND s.status = 'running'
      AND s.lease_expires_at < now()
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid), sa.bindparam("error", type_=JSONB))

# A re-send pushes the next look further out each time (grace, 2x, 4x, ... 64x),
# so a step waiting behind a long queue is not sent again and again.
_RESENT = sa.text(
    """
    UPDATE workflow_steps
    SET dispatched_at = now() + make_interval(secs => :grace * (power(2, least(resends, 6)) - 1)),
        resends = least(resends + 1, 100), waiting_for = CAST(:waiting_for AS text)
    WHERE run_id = :run_id AND name = :step
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid))

_COUNT_RECOVERY = sa.text(
    "UPDATE workflow_runs SET recovery_count = recovery_count + 1, updated_at = now() "
    "WHERE id = :run_id"
).bindparams(sa.bindparam("run_id", type_=sa.Uuid))

_FINISH_STRANDED = sa.text(
    """
    UPDATE workflow_runs r
    SET status = 'succeeded', finished_at = now(), updated_at = now(),
        started_at = coalesce(r.started_at, now()),
        output = coalesce(r.output, (SELECT coalesce(jsonb_object_agg(p.name, p.output), '{}')
                                       FROM workflow_steps p
                                      WHERE p.run_id = r.id AND p.status = 'succeeded'
                                        AND p.kind <> 'compensation'))
    WHERE r.id = :run_id AND r.status IN ('pending', 'running') AND r.error IS NULL
      AND NOT EXISTS (SELECT 1 FROM workflow_steps q
                      WHERE q.run_id = r.id AND q.kind <> 'compensation'
                        AND q.status NOT IN ('succeeded', 'skipped'))
    """
).bindparams(sa.bindparam("run_id", type_=sa.Uuid))

_HAS_WORKERS = sa.text(
    "SELECT count(*) FROM workflow_workers WHERE seen_at > now() - make_interval(secs => :ttl)"
)
_LIVE_TASK = sa.text(
    "SELECT 1 FROM workflow_workers "
    "WHERE :task = ANY(tasks) AND seen_at > now() - make_interval(secs => :ttl) LIMIT 1"
)
_HEARTBEAT = sa.text(
    """
    INSERT INTO workflow_workers (name, tasks, seen_at) VALUES (:name, :tasks, now())
    ON CONFLICT (name) DO UPDATE SET tasks = excluded.tasks, seen_at = now()
    """
)
_FORGET_WORKERS = sa.text(
    "DELETE FROM workflow_workers WHERE seen_at < now() - make_interval(secs => :ttl * 10)"
)


class RecoveryMixin:
    engine: Engine
    registry: Registry
    recovery_grace: float
    recovery_limit: int
    worker_ttl: float
    _stranded_after: tuple[Any, uuid.UUID] | None = None
    send: Callable[[uuid.UUID, str, Sequence[str]], bool]

    def recover(self, *, batch: int = 500) -> RecoveryReport:
        """One sweep. Safe to run on every worker at once: the work is split, not doubled."""
        began = time.monotonic()
        report = RecoveryReport()
        to_send: list[tuple[uuid.UUID, str, list[str]]] = []
        with self.engine.begin() as c:
            for run_id, workflow, step in transitions.wake_due(c, batch):
                to_send.append((run_id, workflow, [step]))
                report.woken.append(run_id)
        with self.engine.connect() as c:
            stuck = c.execute(_STUCK, {"batch": batch, "grace": self.recovery_grace}).all()
            stranded = self._stranded_slice(c, batch)
            workers_known = bool(c.execute(_HAS_WORKERS, {"ttl": self.worker_ttl}).scalar())
        for row in stuck:
            with self.engine.begin() as c:
                action = self._recover_step(c, row.run_id, row.name, row.why, workers_known, report)
            if action is not None:
                to_send.append(action)
        for run_id in stranded:
            with self.engine.begin() as c:
                if c.execute(_FINISH_STRANDED, {"run_id": run_id}).rowcount:
                    report.finished.append(run_id)
        for run_id, workflow, steps in to_send:
            self.send(run_id, workflow, steps)
        with self.engine.begin() as c:
            c.execute(_RECORD_SWEEP, {
                "seconds": time.monotonic() - began,
                "resent": len(report.resent), "dead_lettered": len(report.dead_lettered),
            })
        if report.resent or report.dead_lettered or report.finished or report.waiting_for_worker:
            log.warning(
                "recovery sweep: resent=%d dead_lettered=%d finished=%d waiting_for_worker=%d",
                len(report.resent), len(report.dead_lettered), len(report.finished),
                len(report.waiting_for_worker),
            )
        return report

    def _recover_step(
        self,
        c: Connection,
        run_id: uuid.UUID,
        step: str,
        why: str,
        workers_known: bool,
        report: RecoveryReport,
    ) -> tuple[uuid.UUID, str, list[str]] | None:
        run = c.execute(_LOCK_RUN, {"run_id": run_id}).first()
        if run is None or run.status not in ("pending", "running"):
            return None  # another sweep (or a claim) holds it, or it is finished
        state = c.execute(_STEP, {"run_id": run_id, "step": step, "grace": self.recovery_grace}).first()
        if state is None:
            return None
        if why == "lease" and not (state.status == "running" and state.expired):
            return None
        if why == "retry" and not (state.status == "retrying" and state.retry_due):
            return None
        if why == "lost" and not (state.status == "pending" and state.stale):
            return None
        task = f"{run.name}.{step}"
        if workers_known and c.execute(_LIVE_TASK, {"task": task, "ttl": self.worker_ttl}).first() is None:
            reason = (
                f"a worker that has step {task!r}: no live worker registered it "
                "(deploy it, or add its module to WORKFLOW_MODULES)"
            )
            c.execute(_RESENT, {"run_id": run_id, "step": step, "grace": self.recovery_grace,
                                "waiting_for": reason})
            report.waiting_for_worker.append(run_id)
            return None
        if why == "lease":
            # its lease expired: the worker died, was killed, or hung past its limit
            if run.recovery_count >= self.recovery_limit:
                advance = self._dead_letter(
                    c, run_id, step, state.attempts, run.recovery_count, None
                )
                report.dead_lettered.append(run_id)
                # compensations of the steps it followed, if any
                return (run_id, str(run.name), advance.send) if advance and advance.send else None
            error = {
                "type": "WorkerLost",
                "message": "the step's lease expired before it finished",
                "step": step,
                "attempt": state.attempts,
                "retryable": True,
            }
            c.execute(_WORKER_LOST, {"run_id": run_id, "step": step, "error": error})
            c.execute(_COUNT_RECOVERY, {"run_id": run_id})
        c.execute(_RESENT, {"run_id": run_id, "step": step, "grace": self.recovery_grace,
                            "waiting_for": None})
        report.resent.append(run_id)
        return run_id, str(run.name), [step]

    def take_over_dead_lease(
        self, run_id: uuid.UUID, step: str, holder: str, attempt: int
    ) -> bool:
        """A step's lease holder is known dead: end its lease so the step can be claimed.

        The claim that follows counts the recovery; at the recovery limit the
        run is dead-lettered here instead, so a step that kills its worker
        every time does not loop. Returns whether the step may be claimed again.
        """
        with self.engine.begin() as c:
            count = c.execute(
                sa.text(
                    "SELECT recovery_count FROM workflow_runs WHERE id = :run_id FOR NO KEY UPDATE"
                ).bindparams(sa.bindparam("run_id", type_=sa.Uuid)),
                {"run_id": run_id},
            ).scalar()
            if count is None:
                return False
            if count >= self.recovery_limit:
                self._dead_letter(c, run_id, step, attempt, count, holder)
                return False
            return transitions.expire_lease(c, run_id, step, holder)

    def _dead_letter(
        self,
        conn: Connection,
        run_id: uuid.UUID,
        step: str,
        attempt: int,
        recoveries: int,
        holder: str | None,
    ) -> transitions.Advance | None:
        """Fail a step (and its run) that keeps losing its worker: a dead letter."""
        exc = RecoveryLimitExceeded(
            f"step {step!r} lost its worker {recoveries + 1} times (crash, kill or "
            f"expired lease); giving up after the recovery limit of {self.recovery_limit}"
        )
        return transitions.fail(
            conn, run_id, step, holder,
            structured_error(exc, step=step, attempt=attempt, retryable=False),
        )

    def _stranded_slice(self, c: Connection, batch: int) -> list[uuid.UUID]:
        """Stranded runs in this sweep's slice (at most ``batch``); moves the cursor on."""
        after = self._stranded_after
        rows = c.execute(_STRANDED, {
            "grace": self.recovery_grace, "slice": STRANDED_SLICE,
            "after_at": after[0] if after else None, "after_id": after[1] if after else None,
        }).all()
        found: list[uuid.UUID] = []
        for i, row in enumerate(rows):
            if not row.stranded:
                continue
            if len(found) == batch > 0:  # the rest of the slice waits for the next sweep
                self._stranded_after = (rows[i - 1].updated_at, rows[i - 1].id)
                return found
            found.append(row.id)
        self._stranded_after = (
            (rows[-1].updated_at, rows[-1].id) if len(rows) == STRANDED_SLICE else None
        )
        return found

    # -- workers -------------------------------------------------------------

    def heartbeat(self, name: str, tasks: Sequence[str]) -> None:
        """Record that worker ``name`` is alive and which step tasks it has."""
        with self.engine.begin() as c:
            c.execute(_HEARTBEAT, {"name": name, "tasks": list(tasks)})
            c.execute(_FORGET_WORKERS, {"ttl": self.worker_ttl})

    def forget_worker(self, name: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text("DELETE FROM workflow_workers WHERE name = :name"), {"name": name})

    # -- retention -------------------------------------------------------------

    def cleanup(self, retention_seconds: float, *, batch: int = 1000) -> int:
        """Delete finished runs older than the retention, a batch per transaction.

        Steps, their history, signals and delivery records go with their run.
        """
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


def describe(report: RecoveryReport) -> dict[str, Any]:
    return {
        "resent": len(report.resent),
        "dead_lettered": len(report.dead_lettered),
        "woken": len(report.woken),
        "finished": len(report.finished),
        "waiting_for_worker": len(report.waiting_for_worker),
    }
