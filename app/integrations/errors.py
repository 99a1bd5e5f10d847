"""One classification of provider failures, shared by every integration.

Each provider turns its client's exception into facts — an HTTP status, the
provider's message, a ``Retry-After`` header — or a transport failure, and
this module decides: connection errors, timeouts, 429 and 5xx are worth
another attempt (``IntegrationUnavailable``); any other 4xx is not
(``IntegrationRejected``). A 429's ``Retry-After`` becomes the next delay.

Messages end up in a run's ``error``, which the API and the dashboard show, so
every message passes through ``redact`` first: API keys, passwords in URLs
and webhook paths never leave the worker.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from app.engine.errors import NonRetryableError, RetryableError, StepError
from app.engine.retry import is_retryable_status
from app.settings import Settings

REDACTED = "[redacted]"
MAX_MESSAGE = 500

# Shapes of credentials that may show up in a provider's echo of our request.
# Each keeps group 1 and group 2 (the context) and replaces what is between.
_SECRET_PATTERNS = (
    re.compile(r"()\b[sr]k_(?:live|test)_[A-Za-z0-9]+()"),  # Stripe secret / restricted keys
    re.compile(r"()\bSG\.[\w-]+\.[\w-]+()"),  # SendGrid API keys
    re.compile(r"(?i)(bearer\s+)[^\s\"']+()"),
    re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{8,}()"),  # HTTP basic credentials (Twilio)
    re.compile(r"(//[^/\s:@]+:)[^@\s/]+(@)"),  # user:password@ in any URL
)


class IntegrationUnavailable(RetryableError):
    """The provider could not take the request now; another attempt may succeed."""

    code = "integration_unavailable"


class IntegrationRejected(NonRetryableError):
    """The provider refused the request; repeating it would be refused again."""

    code = "integration_rejected"


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every configured value that must never appear in an error message."""
    found: list[str] = []
    for key in (settings.sendgrid_api_key, settings.stripe_api_key, settings.twilio_auth_token):
        if key:
            found.append(key)
    if settings.smtp_url:
        password = urlsplit(settings.smtp_url).password
        if password:
            found.append(password)
    if settings.notify_webhook_url:
        path = urlsplit(settings.notify_webhook_url).path.strip("/")
        if path:
            found.append(path)  # the webhook's path is its credential
    return tuple(found)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secrets and credential-shaped strings replaced."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED + m.group(2), text)
    return text


def provider_message(body: bytes | str | None) -> str:
    """The human part of an error body: JSON ``errors[].message``, ``error.message``,
    ``message``, or the text itself (Slack answers in plain words)."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:MAX_MESSAGE]
    return _message_in(data) or text.strip()[:MAX_MESSAGE]


def _message_in(data: Any) -> str:
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list):
            parts = [_message_in(e) for e in errors]
            return "; ".join(p for p in parts if p)[:MAX_MESSAGE]
        error = data.get("error")
        if isinstance(error, dict):
            return _message_in(error)
        if isinstance(error, str):
            return error[:MAX_MESSAGE]
        message = data.get("message")
        if isinstance(message, str):
            return message[:MAX_MESSAGE]
    return ""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):  # "inf", "nan", "1e999": not a delay anyone meant
        return None
    return max(0.0, seconds)


def header(headers: Mapping[str, Any] | Any, name: str) -> str | None:
    """A header from any client's header collection, case-insensitively."""
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is not None:
        value = getter(name) or getter(name.lower())
        if value is not None:
            return str(value)
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return str(value)
    return None


def from_status(
    provider: str,
    status: int,
    message: str,
    *,
    retry_after: str | None = None,
    secrets: Iterable[str] = (),
) -> StepError:
    """The error for an HTTP answer that was not a success."""
    text = redact(f"{provider} answered {status}: {message or 'no message'}", secrets)
    details = {"provider": provider, "status": status}
    if is_retryable_status(status):
        delay = parse_retry_after(retry_after) if status in (429, 503) else None
        return IntegrationUnavailable(text, retry_after=delay, details=details)
    return IntegrationRejected(text, details=details)


def from_transport(provider: str, exc: BaseException, *, secrets: Iterable[str] = ()) -> StepError:
    """The error for a request that got no answer: refused, reset, timed out."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) or "timed out" in reason.lower():
        reason = f"timed out ({reason})"
    return IntegrationUnavailable(
        redact(f"{provider} unreachable: {reason}", secrets), details={"provider": provider}
    )


def from_smtp(provider: str, code: int, message: str, *, secrets: Iterable[str] = ()) -> StepError:
    """SMTP replies: 4xx is a transient failure (retry), 5xx a permanent one."""
    text = redact(f"{provider} answered {code}: {message or 'no message'}", secrets)
    details = {"provider": provider, "smtp_code": code}
    if 400 <= code < 500:
        return IntegrationUnavailable(text, details=details)
    return IntegrationRejected(text, details=details)
