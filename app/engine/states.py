"""The run and step state machines as data.

Pure: no I/O. ``WorkflowManager`` turns each transition into one conditional
``UPDATE ... WHERE status IN (allowed sources)``, so two racing callers cannot
both win; these tables say which sources are allowed.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WAITING = "waiting"  # a sleep or a signal wait: no worker slot, a wake-up time in Postgres
    SKIPPED = "skipped"  # its condition was false; counts as done
    COMPENSATED = "compensated"  # succeeded, then undone by its compensation


class StepKind(StrEnum):
    TASK = "task"
    SLEEP = "sleep"
    SIGNAL = "signal"
    COMPENSATION = "compensation"  # undoes one succeeded step when its run fails for good


RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.SUCCEEDED: frozenset(),
    # an operator's retry resumes a failed or cancelled run
    RunStatus.FAILED: frozenset({RunStatus.PENDING}),
    RunStatus.CANCELLED: frozenset({RunStatus.PENDING}),
}

STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    # pending -> failed: the sweep fails a step nobody can ever run
    StepStatus.PENDING: frozenset({StepStatus.RUNNING, StepStatus.FAILED}),
    # running -> running: a lease that expired is taken over by a new claim;
    # running -> waiting: a sleep or a signal wait releases its worker
    StepStatus.RUNNING: frozenset(
        {
            StepStatus.RUNNING,
            StepStatus.SUCCEEDED,
            StepStatus.SKIPPED,
            StepStatus.RETRYING,
            StepStatus.FAILED,
            StepStatus.WAITING,
        }
    ),
    StepStatus.RETRYING: frozenset({StepStatus.RUNNING, StepStatus.FAILED, StepStatus.PENDING}),
    # woken (due, or its signal came): claimable again
    StepStatus.WAITING: frozenset({StepStatus.PENDING}),
    # succeeded -> compensated: its run failed for good and its undo ran
    StepStatus.SUCCEEDED: frozenset({StepStatus.COMPENSATED}),
    StepStatus.SKIPPED: frozenset(),
    StepStatus.COMPENSATED: frozenset(),
    # an operator's retry makes a failed step runnable again
    StepStatus.FAILED: frozenset({StepStatus.PENDING}),
}

# A step in one of these lets the steps after it become ready.
DONE_STEP_STATUSES = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})

FINISHED_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
ACTIVE_RUN_STATUSES = frozenset({RunStatus.PENDING, RunStatus.RUNNING})


def run_sources(target: RunStatus) -> frozenset[RunStatus]:
    """Every run status from which ``target`` may be reached."""
    return frozenset(src for src, dests in RUN_TRANSITIONS.items() if target in dests)


def step_sources(target: StepStatus) -> frozenset[StepStatus]:
    """Every step status from which ``target`` may be reached."""
    return frozenset(src for src, dests in STEP_TRANSITIONS.items() if target in dests)


def sql_list(statuses: frozenset[RunStatus] | frozenset[StepStatus]) -> str:
    """Statuses as a SQL literal list, for the guards of ``transitions``."""
    return ", ".join(f"'{s.value}'" for s in sorted(statuses))


def can_retry(status: RunStatus | str) -> bool:
    return RunStatus.PENDING in RUN_TRANSITIONS[RunStatus(status)]


def can_cancel(status: RunStatus | str) -> bool:
    return RunStatus.CANCELLED in RUN_TRANSITIONS[RunStatus(status)]
