"""Errors with stable codes.

The API maps each ``code`` to a status and the one JSON error shape; step
functions raise ``RetryableError`` / ``NonRetryableError`` to tell the retry
policy what they know about a failure.
"""

from __future__ import annotations

from typing import Any


class StepwiseError(Exception):
    """Base of every error Stepwise raises on purpose."""

    code = "stepwise_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class DefinitionError(StepwiseError):
    """A workflow or step is declared wrongly (raised at import time)."""

    code = "invalid_definition"


class UnknownWorkflow(StepwiseError):
    code = "unknown_workflow"


class RunNotFound(StepwiseError):
    code = "run_not_found"


class InvalidInput(StepwiseError):
    code = "invalid_input"


class IllegalTransition(StepwiseError):
    code = "illegal_transition"


class IdempotencyConflict(StepwiseError):
    code = "idempotency_conflict"


class NothingToRetry(IllegalTransition):
    """Every step of the run is done (its last step finished after a cancel)."""

    code = "nothing_to_retry"


class RunCompensated(IllegalTransition):
    """The run's steps were undone; resuming it would build on undone work."""

    code = "run_compensated"


class RunFinished(IllegalTransition):
    code = "run_finished"


class UnknownSignal(InvalidInput):
    code = "unknown_signal"


class StepError(StepwiseError):
    """Raised by step code to classify a failure explicitly.

    ``retry_after`` (seconds) overrides the policy's next delay, e.g. from an
    HTTP ``Retry-After`` header.
    """

    code = "step_error"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class RetryableError(StepError):
    code = "retryable_error"
    retryable = True


class NonRetryableError(StepError):
    code = "non_retryable_error"
    retryable = False


class OutputNotSerializable(NonRetryableError):
    code = "output_not_serializable"


class StepNotFound(NonRetryableError):
    """The run names a step that the deployed code no longer defines."""

    code = "step_not_found"


class RecoveryLimitExceeded(NonRetryableError):
    """A step kept losing its worker (crash, kill, expired lease)."""

    code = "recovery_limit_exceeded"


def structured_error(
    exc: BaseException, *, step: str, attempt: int, retryable: bool
) -> dict[str, Any]:
    """The error a run and a step carry: stable keys, readable message."""
    message = str(exc) or type(exc).__name__
    return {
        "type": type(exc).__name__,
        "message": message[:2000],
        "step": step,
        "attempt": attempt,
        "retryable": retryable,
    }
