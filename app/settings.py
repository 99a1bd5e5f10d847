"""The one place that reads the environment.

Every value is cast once, here, into a frozen ``Settings``; a bad value fails at
start-up with a message naming the variable (``ConfigError``), so a typo in a
deployment never surfaces later as a confusing runtime error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from email.utils import parseaddr
from typing import Any, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")

DEFAULT_WORKFLOW_MODULES = (
    "app.workflows.signup",
    "app.workflows.signup_digest",
    "app.workflows.onboarding",
)


class ConfigError(ValueError):
    """A configuration variable is missing or has a value we cannot use."""


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {raw!r}")
    return value


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def cast(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    return cast


def _url(*schemes: str) -> Callable[[str, str], str]:
    def cast(name: str, raw: str) -> str:
        scheme = urlparse(raw).scheme.split("+")[0]
        if scheme not in schemes:
            raise ConfigError(f"{name} must be a URL with scheme {'/'.join(schemes)}, got {raw!r}")
        return raw

    return cast


def _csv(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not items:
        raise ConfigError(f"{name} must list at least one item")
    return items


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    hosts = tuple(h.lower() for h in _csv(name, raw))
    for host in hosts:
        if "/" in host or "@" in host or " " in host:
            raise ConfigError(f"{name} lists host names (or name:port), not URLs: got {host!r}")
    return hosts


def _basic_auth(name: str, raw: str) -> str:
    for pair in raw.split(","):
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            raise ConfigError(f"{name} must look like user:password[,user2:password2]")
    return raw


def _str(name: str, raw: str) -> str:
    return raw


E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_MESSAGING_SERVICE = re.compile(r"^MG[0-9a-fA-F]{32}$")
# the address part of EMAIL_FROM: one @, no spaces, a dotted domain
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>.]+$")


def _twilio_sender(name: str, raw: str) -> str:
    """A phone number in E.164 or a Messaging Service SID (``MG`` + 32 hex digits)."""
    value = raw.strip()
    if E164.match(value) or _MESSAGING_SERVICE.match(value):
        return value
    raise ConfigError(
        f"{name} must be a phone number in E.164 (e.g. +14155550100) "
        f"or a Messaging Service SID (MG...), got {raw!r}"
    )


def is_email_address(value: str) -> bool:
    """``a@b.c`` or ``Name <a@b.c>``: what SendGrid's and SMTP's senders accept."""
    _, address = parseaddr(value)
    return bool(address) and _ADDRESS.match(address) is not None and "<" not in address


def _schedule(name: str, raw: str) -> str:
    """Seconds (``"30"``) or a 5-field crontab (``"0 0 * * *"``); parsed by app.scheduling."""
    text = raw.strip()
    try:
        if float(text) > 0:
            return text
    except ValueError:
        if len(text.split()) == 5:
            return text
    raise ConfigError(
        f"{name} must be a number of seconds or a crontab like '0 0 * * *', got {raw!r}"
    )


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/stepwise"
    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    celery_visibility_timeout: float = 3600.0
    api_token: str | None = None
    secret_key: str | None = None
    flower_basic_auth: str | None = None
    flower_port: int = 5555
    flower_url: str | None = None
    port: int = 8000
    max_content_length: int = 1024 * 1024
    sendgrid_api_key: str | None = None
    sendgrid_api_host: str = "https://api.sendgrid.com"
    smtp_url: str | None = None
    # a syntactically valid address on a reserved domain: the console default
    # accepts it, and a real provider is told to set EMAIL_FROM (see below)
    email_from: str = "stepwise@example.com"
    notify_webhook_url: str | None = None
    notify_webhook_format: str = "auto"
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    integration_timeout: float = 10.0
    # hosts (``name`` or ``name:port``) a designed workflow's http_request may call; none by default
    http_action_allowed_hosts: tuple[str, ...] = ()
    workflow_modules: tuple[str, ...] = DEFAULT_WORKFLOW_MODULES
    workflow_retry_attempts: int = 3
    workflow_retry_delay: float = 1.0
    workflow_retry_max_delay: float = 300.0
    workflow_step_timeout: float = 60.0
    workflow_recovery_interval: float = 10.0
    workflow_recovery_grace: float = 30.0
    workflow_recovery_limit: int = 3
    workflow_cleanup_retention: float = 30 * 86400.0
    log_format: str = "json"
    log_level: str = "info"
    signup_digest_schedule: str = "0 0 * * *"
    onboarding_reminder_after: float = 86400.0
    onboarding_verify_timeout: float = 259200.0
    onboarding_followup_after: float = 172800.0
    web_threads: int = 32
    web_max_waiters: int = 24
    dashboard_max_streams: int = 8
    dashboard_stream_seconds: float = 30.0

    def override(self, **changes: Any) -> Settings:
        """A copy with some values replaced (tests, ``create_app(settings=...)``)."""
        return replace(self, **changes)


# variable name -> (field, cast)
_VARIABLES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "DATABASE_URL": ("database_url", _url("postgresql", "postgres")),
    "CELERY_BROKER_URL": ("celery_broker_url", _url("redis", "rediss", "amqp", "amqps")),
    "CELERY_VISIBILITY_TIMEOUT": ("celery_visibility_timeout", _positive_float),
    "API_TOKEN": ("api_token", _str),
    "SECRET_KEY": ("secret_key", _str),
    "FLOWER_BASIC_AUTH": ("flower_basic_auth", _basic_auth),
    "FLOWER_PORT": ("flower_port", _positive_int),
    "FLOWER_URL": ("flower_url", _url("http", "https")),
    "PORT": ("port", _positive_int),
    "MAX_CONTENT_LENGTH": ("max_content_length", _positive_int),
    "SENDGRID_API_KEY": ("sendgrid_api_key", _str),
    "SENDGRID_API_HOST": ("sendgrid_api_host", _url("http", "https")),
    "SMTP_URL": ("smtp_url", _url("smtp", "smtps")),
    "EMAIL_FROM": ("email_from", _str),
    "NOTIFY_WEBHOOK_URL": ("notify_webhook_url", _url("http", "https")),
    "NOTIFY_WEBHOOK_FORMAT": ("notify_webhook_format", _choice("auto", "slack", "discord")),
    "STRIPE_API_KEY": ("stripe_api_key", _str),
    "STRIPE_API_BASE": ("stripe_api_base", _url("http", "https")),
    "TWILIO_ACCOUNT_SID": ("twilio_account_sid", _str),
    "TWILIO_AUTH_TOKEN": ("twilio_auth_token", _str),
    "TWILIO_FROM": ("twilio_from", _twilio_sender),
    "TWILIO_API_BASE": ("twilio_api_base", _url("http", "https")),
    "INTEGRATION_TIMEOUT": ("integration_timeout", _positive_float),
    "HTTP_ACTION_ALLOWED_HOSTS": ("http_action_allowed_hosts", _hosts),
    "WORKFLOW_MODULES": ("workflow_modules", _csv),
    "WORKFLOW_RETRY_ATTEMPTS": ("workflow_retry_attempts", _positive_int),
    "WORKFLOW_RETRY_DELAY": ("workflow_retry_delay", _positive_float),
    "WORKFLOW_RETRY_MAX_DELAY": ("workflow_retry_max_delay", _positive_float),
    "WORKFLOW_STEP_TIMEOUT": ("workflow_step_timeout", _positive_float),
    "WORKFLOW_RECOVERY_INTERVAL": ("workflow_recovery_interval", _positive_float),
    "WORKFLOW_RECOVERY_GRACE": ("workflow_recovery_grace", _positive_float),
    "WORKFLOW_RECOVERY_LIMIT": ("workflow_recovery_limit", _positive_int),
    "WORKFLOW_CLEANUP_RETENTION": ("workflow_cleanup_retention", _positive_float),
    "LOG_FORMAT": ("log_format", _choice("json", "text")),
    "LOG_LEVEL": ("log_level", _choice("debug", "info", "warning", "error")),
    "SIGNUP_DIGEST_SCHEDULE": ("signup_digest_schedule", _schedule),
    "ONBOARDING_REMINDER_AFTER": ("onboarding_reminder_after", _positive_float),
    "ONBOARDING_VERIFY_TIMEOUT": ("onboarding_verify_timeout", _positive_float),
    "ONBOARDING_FOLLOWUP_AFTER": ("onboarding_followup_after", _positive_float),
    "WEB_THREADS": ("web_threads", _positive_int),
    "WEB_MAX_WAITERS": ("web_max_waiters", _positive_int),
    "DASHBOARD_MAX_STREAMS": ("dashboard_max_streams", _positive_int),
    "DASHBOARD_STREAM_SECONDS": ("dashboard_stream_seconds", _positive_float),
}

ENVIRONMENT_VARIABLES = tuple(_VARIABLES)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for variable, (name, cast) in _VARIABLES.items():
        raw = env.get(variable)
        if raw is None or raw == "":
            continue
        values[name] = cast(variable, raw)
    settings = Settings(**values)
    if settings.workflow_step_timeout <= 0:
        raise ConfigError("WORKFLOW_STEP_TIMEOUT must be greater than 0")
    if settings.workflow_recovery_interval <= 0:
        raise ConfigError("WORKFLOW_RECOVERY_INTERVAL must be greater than 0")
    if settings.celery_visibility_timeout <= settings.workflow_step_timeout * 2 + 30:
        raise ConfigError(
            "CELERY_VISIBILITY_TIMEOUT must exceed twice WORKFLOW_STEP_TIMEOUT plus 30 s, "
            "or the broker would redeliver steps that are still running"
        )
    if settings.onboarding_verify_timeout <= settings.onboarding_reminder_after:
        raise ConfigError(
            "ONBOARDING_VERIFY_TIMEOUT must be greater than ONBOARDING_REMINDER_AFTER (the "
            "reminder is sent before the verification window closes)"
        )
    if settings.workflow_cleanup_retention < 86400:
        raise ConfigError(
            "WORKFLOW_CLEANUP_RETENTION must be at least 86400 (one day): the /metrics "
            "counters are counted from the current day's runs"
        )
    _check_web_bounds(settings)
    check_providers(settings)
    return settings


def _check_web_bounds(settings: Settings) -> None:
    """Each waiter and each dashboard stream parks one web thread: leave some free."""
    if settings.web_max_waiters >= settings.web_threads:
        raise ConfigError(
            "WEB_MAX_WAITERS must be below WEB_THREADS, so ordinary requests keep a thread "
            f"(got {settings.web_max_waiters} waiters for {settings.web_threads} threads)"
        )
    if settings.dashboard_max_streams > settings.web_max_waiters:
        raise ConfigError(
            "DASHBOARD_MAX_STREAMS must not exceed WEB_MAX_WAITERS: each stream is a waiter"
        )
    if settings.dashboard_stream_seconds < 1:
        raise ConfigError("DASHBOARD_STREAM_SECONDS must be at least 1")


_TWILIO_VARIABLES = {
    "TWILIO_ACCOUNT_SID": "twilio_account_sid",
    "TWILIO_AUTH_TOKEN": "twilio_auth_token",
    "TWILIO_FROM": "twilio_from",
}


def check_providers(settings: Settings) -> None:
    """Provider settings that only make sense together, checked at start.

    Twilio needs all three of its variables: with one or two set, SMS would
    silently go to the console, so the missing ones are named instead. A real
    email provider needs an ``EMAIL_FROM`` it will accept (SendGrid answers
    400 to a sender that is not an address; SMTP servers refuse it).
    """
    twilio = {var: getattr(settings, field) for var, field in _TWILIO_VARIABLES.items()}
    missing = [var for var, value in twilio.items() if not value]
    if missing and len(missing) < len(twilio):
        raise ConfigError(
            f"{', '.join(missing)} must be set too: Twilio needs TWILIO_ACCOUNT_SID, "
            "TWILIO_AUTH_TOKEN and TWILIO_FROM (or none of them, for the console default)"
        )
    if (settings.sendgrid_api_key or settings.smtp_url) and not is_email_address(
        settings.email_from
    ):
        raise ConfigError(
            "EMAIL_FROM must be an email address (e.g. team@example.com or "
            f"'Team <team@example.com>') when an email provider is configured, "
            f"got {settings.email_from!r}"
        )


_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _current
    if _current is None:
        _current = load_settings()
    return _current


def set_settings(settings: Settings) -> None:
    """Install settings for this process (the app factory and tests use it)."""
    global _current
    _current = settings


__all__ = [
    "E164",
    "ConfigError",
    "check_providers",
    "is_email_address",
    "ENVIRONMENT_VARIABLES",
    "Settings",
    "get_settings",
    "load_settings",
    "set_settings",
]
