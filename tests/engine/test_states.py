from app.engine.states import (
    RUN_TRANSITIONS,
    STEP_TRANSITIONS,
    RunStatus,
    StepStatus,
    can_cancel,
    can_retry,
    run_sources,
    step_sources,
)


def test_operator_retry_is_allowed_only_from_failed_or_cancelled() -> None:
    assert run_sources(RunStatus.PENDING) == {RunStatus.FAILED, RunStatus.CANCELLED}
    assert [s for s in RunStatus if can_retry(s)] == [RunStatus.FAILED, RunStatus.CANCELLED]


def test_cancel_is_allowed_only_while_active() -> None:
    assert [s for s in RunStatus if can_cancel(s)] == [RunStatus.PENDING, RunStatus.RUNNING]


def test_succeeded_is_final_for_runs_and_only_compensation_undoes_a_step() -> None:
    assert RUN_TRANSITIONS[RunStatus.SUCCEEDED] == frozenset()
    assert STEP_TRANSITIONS[StepStatus.SUCCEEDED] == {StepStatus.COMPENSATED}
    assert STEP_TRANSITIONS[StepStatus.COMPENSATED] == frozenset()
    assert STEP_TRANSITIONS[StepStatus.SKIPPED] == frozenset()
    assert not any(RunStatus.SUCCEEDED in run_sources(t) for t in RunStatus)
    assert [t for t in StepStatus if StepStatus.SUCCEEDED in step_sources(t)] == [
        StepStatus.COMPENSATED
    ]


def test_a_wait_is_left_only_by_waking_up() -> None:
    assert STEP_TRANSITIONS[StepStatus.WAITING] == {StepStatus.PENDING}
    assert StepStatus.WAITING in STEP_TRANSITIONS[StepStatus.RUNNING]


def test_a_step_is_claimed_from_pending_retrying_or_an_expired_run() -> None:
    assert step_sources(StepStatus.RUNNING) == {
        StepStatus.PENDING,
        StepStatus.RETRYING,
        StepStatus.RUNNING,
    }


def test_statuses_are_the_contract_words() -> None:
    assert [s.value for s in RunStatus] == ["pending", "running", "succeeded", "failed", "cancelled"]
    assert [s.value for s in StepStatus] == [
        "pending", "running", "retrying", "succeeded", "failed", "waiting", "skipped", "compensated"
    ]
