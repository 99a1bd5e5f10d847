"""The one classification of provider failures, and redaction (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from app.engine.retry import RetryPolicy
from app.integrations.errors import (
    REDACTED,
    IntegrationRejected,
    IntegrationUnavailable,
    from_smtp,
    from_status,
    from_transport,
    parse_retry_after,
    provider_message,
    redact,
    secrets_of,
)
from app.settings import Settings


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_rate_limits_and_server_errors_are_retryable(status):
    error = from_status("sendgrid", status, "try later")
    assert isinstance(error, IntegrationUnavailable)
    assert RetryPolicy().is_retryable(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_client_errors_are_not_retryable(status):
    error = from_status("stripe", status, "bad request")
    assert isinstance(error, IntegrationRejected)
    assert not RetryPolicy().is_retryable(error)
    assert error.message == f"stripe answered {status}: bad request"


def test_retry_after_of_a_429_becomes_the_next_delay():
    error = from_status("slack", 429, "rate limited", retry_after="2")
    assert error.retry_after == 2.0
    policy = RetryPolicy(initial_delay=0.1, jitter=0.0)
    assert policy.delay_for(1, error) == 2.0


def test_retry_after_as_an_http_date_counts_from_now():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") == 0.0


def test_transport_failures_are_retryable_and_say_timed_out():
    error = from_transport("sendgrid", TimeoutError("read operation timed out"))
    assert isinstance(error, IntegrationUnavailable)
    assert "timed out" in error.message
    refused = from_transport("smtp", ConnectionRefusedError(111, "refused"))
    assert isinstance(refused, IntegrationUnavailable)


def test_smtp_transient_replies_retry_and_permanent_ones_do_not():
    assert isinstance(from_smtp("smtp", 451, "try again"), IntegrationUnavailable)
    assert isinstance(from_smtp("smtp", 550, "no such user"), IntegrationRejected)


def test_provider_messages_are_read_from_each_providers_error_shape():
    assert provider_message(b'{"errors": [{"message": "a"}, {"message": "b"}]}') == "a; b"
    assert provider_message(b'{"error": {"message": "No such customer"}}') == "No such customer"
    assert provider_message(b'{"message": "Invalid Webhook Token", "code": 50027}') == (
        "Invalid Webhook Token"
    )
    assert provider_message(b"no_service") == "no_service"


def test_secrets_are_redacted_from_messages():
    settings = Settings(
        sendgrid_api_key="SG.abc.def",
        stripe_api_key="sk_live_123456",
        smtp_url="smtp://user:hunter2@mail.example:587",
        notify_webhook_url="https://hooks.example/services/T1/B2/XyZsecret",
    )
    text = (
        "key SG.abc.def and sk_live_123456, Bearer tok3n, smtp://user:hunter2@mail.example, "
        "https://hooks.example/services/T1/B2/XyZsecret, sk_test_otherkey, SG.other.key"
    )
    cleaned = redact(text, secrets_of(settings))
    for secret in ("SG.abc.def", "sk_live_123456", "tok3n", "hunter2", "XyZsecret",
                   "sk_test_otherkey", "SG.other.key"):
        assert secret not in cleaned
    assert cleaned.count(REDACTED) == 7
    assert "smtp://user:" in cleaned and "https://hooks.example/" in cleaned
