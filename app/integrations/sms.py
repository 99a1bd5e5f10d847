"""SMS: the interface, the console default, and the choice by settings.

``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and ``TWILIO_FROM`` together
select Twilio (``twilio_sms``); none of them, the console default, which logs
the text so the system runs with no accounts. Setting only some of them is a
``ConfigError`` at start (``app.settings.check_providers``): a half-configured
provider must not quietly become the console.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import structlog

from app.settings import Settings, check_providers

log = structlog.get_logger("stepwise.sms")


@dataclass(frozen=True)
class SmsMessage:
    to: str  # E.164, e.g. +14155550100
    body: str


class SmsSender(Protocol):
    name: str

    def send(self, message: SmsMessage, *, idempotency_key: str) -> str:
        """Hand ``message`` to the provider; return the provider's message id.

        Raises ``IntegrationUnavailable`` (retryable) or ``IntegrationRejected``
        (not) from ``app.integrations.errors``.
        """
        ...


@dataclass
class ConsoleSms:
    """Logs the message instead of sending it (the default)."""

    name: str = "console"
    sent: list[SmsMessage] = field(default_factory=list)

    def send(self, message: SmsMessage, *, idempotency_key: str) -> str:
        self.sent.append(message)
        log.info("sms (console)", to=message.to, body=message.body, key=idempotency_key)
        return f"console:{idempotency_key}"


def sms_sender(settings: Settings) -> SmsSender:
    check_providers(settings)  # settings built in code (tests, override) skip load_settings
    if settings.twilio_account_sid:
        from app.integrations.twilio_sms import TwilioSms

        return TwilioSms(settings)
    return ConsoleSms()
