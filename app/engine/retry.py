"""Retry policy: which failures retry, how often, and after what delay.

Pure functions over a frozen dataclass; the random source is passed in so
tests can pin the jitter. The deployment default comes from settings; a
workflow and a step may each override it (``RetryPolicy.merged``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from app.engine.errors import StepError

# Failures that another attempt will not fix: bad data and programming errors.
DEFAULT_NON_RETRYABLE: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    NotImplementedError,
    AssertionError,
)
# Transient by nature: the network, the clock.
DEFAULT_RETRYABLE: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)


class RandomSource(Protocol):
    def random(self) -> float: ...


def http_status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, for clients that attach one."""
    for holder in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status", "http_status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    return None


def is_retryable_status(status: int) -> bool:
    return status == 429 or status == 408 or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts count the first one: ``max_attempts=3`` means two retries."""

    max_attempts: int = 3
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.1
    retryable: tuple[type[BaseException], ...] = field(default=DEFAULT_RETRYABLE)
    non_retryable: tuple[type[BaseException], ...] = field(default=DEFAULT_NON_RETRYABLE)
    retry_unknown: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def merged(self, **overrides: Any) -> RetryPolicy:
        """This policy with the given fields replaced (``None`` keeps ours)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def is_retryable(self, exc: BaseException) -> bool:
        """Classify a failure. Explicit classifications win over type lists."""
        if isinstance(exc, StepError):
            return exc.retryable
        # Non-retryable first: a subclass listed there (e.g. a validation error
        # deriving from ValueError) must not be rescued by a broad OSError entry.
        if isinstance(exc, self.non_retryable):
            return False
        status = http_status_of(exc)
        if status is not None:
            return is_retryable_status(status)
        if isinstance(exc, self.retryable):
            return True
        return self.retry_unknown

    def should_retry(self, attempt: int, exc: BaseException) -> bool:
        """Whether attempt number ``attempt`` (1-based), having failed with ``exc``, gets another."""
        return attempt < self.max_attempts and self.is_retryable(exc)

    def next_delay(self, attempt: int, rng: RandomSource | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        base = min(self.initial_delay * self.multiplier ** max(attempt - 1, 0), self.max_delay)
        if self.jitter and base:
            r = (rng or random).random()
            base = base * (1 + self.jitter * (2 * r - 1))
        return max(0.0, min(base, self.max_delay))

    def delay_for(
        self, attempt: int, exc: BaseException, rng: RandomSource | None = None
    ) -> float:
        """The delay before the next attempt, honouring a server's ``retry_after``
        up to ``max_delay`` and never beyond: a hostile or broken ``Retry-After``
        (``99999999``, ``inf``, ``1e20``) must not park a step for years.
        """
        computed = self.next_delay(attempt, rng)
        retry_after = getattr(exc, "retry_after", None)
        if (
            isinstance(retry_after, int | float)
            and not isinstance(retry_after, bool)
            and not math.isnan(retry_after)
            and retry_after > computed
        ):
            return min(float(retry_after), max(self.max_delay, computed))
        return computed
