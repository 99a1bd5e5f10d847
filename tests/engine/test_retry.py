import random

import pytest

from app.engine.errors import NonRetryableError, RetryableError
from app.engine.retry import RetryPolicy


class FixedRandom:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


class HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status


def test_delays_grow_by_the_multiplier_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_delay=1, multiplier=3, max_delay=20, jitter=0)
    assert [policy.next_delay(n) for n in (1, 2, 3, 4)] == [1, 3, 9, 20]


def test_jitter_stays_within_its_fraction_and_uses_the_injected_source() -> None:
    policy = RetryPolicy(initial_delay=10, multiplier=1, max_delay=100, jitter=0.2)
    assert policy.next_delay(1, FixedRandom(0.0)) == pytest.approx(8.0)
    assert policy.next_delay(1, FixedRandom(0.5)) == pytest.approx(10.0)
    assert policy.next_delay(1, FixedRandom(1.0)) == pytest.approx(12.0)
    rng = random.Random(7)
    assert all(8 <= policy.next_delay(1, rng) <= 12 for _ in range(200))


def test_jitter_never_exceeds_max_delay() -> None:
    policy = RetryPolicy(initial_delay=10, max_delay=10, jitter=0.5)
    assert policy.next_delay(5, FixedRandom(1.0)) == 10


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (ConnectionError("reset"), True),
        (TimeoutError("slow"), True),
        (HttpError(429), True),
        (HttpError(503), True),
        (HttpError(400), False),
        (HttpError(404), False),
        (ValueError("bad"), False),
        (KeyError("x"), False),
        (RetryableError("explicit"), True),
        (NonRetryableError("explicit"), False),
        (RuntimeError("unknown"), True),
    ],
)
def test_classifies_errors(exc: BaseException, retryable: bool) -> None:
    assert RetryPolicy().is_retryable(exc) is retryable


def test_attempts_count_the_first_one() -> None:
    policy = RetryPolicy(max_attempts=3)
    err = ConnectionError()
    assert [policy.should_retry(n, err) for n in (1, 2, 3)] == [True, True, False]
    assert policy.should_retry(1, ValueError()) is False


def test_retry_after_wins_when_longer_than_the_computed_delay() -> None:
    policy = RetryPolicy(initial_delay=1, jitter=0)
    assert policy.delay_for(1, RetryableError("429", retry_after=2.5)) == 2.5
    assert policy.delay_for(1, RetryableError("429", retry_after=0.1)) == 1


def test_overrides_replace_only_what_they_name() -> None:
    base = RetryPolicy(max_attempts=5, initial_delay=2)
    merged = base.merged(max_attempts=2, initial_delay=None)
    assert (merged.max_attempts, merged.initial_delay) == (2, 2)


def test_custom_non_retryable_types_win() -> None:
    class CardDeclined(ConnectionError):
        pass

    policy = RetryPolicy(non_retryable=(CardDeclined,))
    assert policy.is_retryable(CardDeclined()) is False
    assert policy.is_retryable(ConnectionError()) is True


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"multiplier": 0.5}, {"jitter": 2}, {"initial_delay": -1}]
)
def test_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("hostile", [99999999, float("inf"), 1e20, float("nan")])
def test_a_huge_retry_after_is_honoured_only_up_to_max_delay(hostile: float) -> None:
    """Issue 12 item 3: a Retry-After of years parked the step, or overflowed the interval."""
    policy = RetryPolicy(initial_delay=1, jitter=0, max_delay=300)
    delay = policy.delay_for(1, RetryableError("429", retry_after=hostile))
    assert 1 <= delay <= 300


@pytest.mark.parametrize("header", ["inf", "nan", "1e999", "-inf"])
def test_a_non_finite_retry_after_header_is_ignored(header: str) -> None:
    from app.integrations.errors import parse_retry_after

    assert parse_retry_after(header) is None
