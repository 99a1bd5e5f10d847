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
    StepStatus.PENDING: frozenset({StepStatus.RUNNING, StepStatus.FAILED}),
    # running -> running: a lease that expired is taken over by a new claim
    StepStatus.RUNNING: frozenset(
        {StepStatus.RUNNING, StepStatus.SUCCEEDED, StepStatus.RETRYING, StepStatus.FAILED}
    ),
    StepStatus.RETRYING: frozenset({StepStatus.RUNNING, StepStatus.FAILED, StepStatus.PENDING}),
    StepStatus.SUCCEEDED: frozenset(),
    # an operator's retry makes a failed step runnable again
    StepStatus.FAILED: frozenset({StepStatus.PENDING}),
}

FINISHED_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
ACTIVE_RUN_STATUSES = frozenset({RunStatus.PENDING, RunStatus.RUNNING})


def run_sources(target: RunStatus) -> frozenset[RunStatus]:
    """Every run status from which ``target`` may be reached."""
    return frozenset(src for src, dests in RUN_TRANSITIONS.items() if target in dests)


def step_sources(target: StepStatus) -> frozenset[StepStatus]:
    """Every step status from which ``target`` may be reached."""
    return frozenset(src for src, dests in STEP_TRANSITIONS.items() if target in dests)


def can_retry(status: RunStatus | str) -> bool:
    return RunStatus.PENDING in RUN_TRANSITIONS[RunStatus(status)]


def can_cancel(status: RunStatus | str) -> bool:
    return RunStatus.CANCELLED in RUN_TRANSITIONS[RunStatus(status)]
