"""Email: the interface, the console default, and the choice by settings.

``SENDGRID_API_KEY`` selects SendGrid; otherwise ``SMTP_URL`` selects SMTP
(which also serves Amazon SES's SMTP interface); otherwise the console
default logs the message, so the system runs with no accounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import structlog

from app.settings import Settings

log = structlog.get_logger("stepwise.email")


@dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    sender: str


class EmailSender(Protocol):
    name: str

    def send(self, message: EmailMessage, *, idempotency_key: str) -> str:
        """Deliver ``message``; return the provider's message id.

        Raises ``IntegrationUnavailable`` (retryable) or ``IntegrationRejected``
        (not) from ``app.integrations.errors``.
        """
        ...


@dataclass
class ConsoleEmail:
    """Logs the message instead of sending it (the default)."""

    name: str = "console"
    sent: list[EmailMessage] = field(default_factory=list)

    def send(self, message: EmailMessage, *, idempotency_key: str) -> str:
        self.sent.append(message)
        log.info("email (console)", to=message.to, subject=message.subject, key=idempotency_key)
        return f"console:{idempotency_key}"


def email_sender(settings: Settings) -> EmailSender:
    if settings.sendgrid_api_key:
        from app.integrations.sendgrid_email import SendGridEmail

        return SendGridEmail(settings)
    if settings.smtp_url:
        from app.integrations.smtp_email import SmtpEmail

        return SmtpEmail(settings)
    return ConsoleEmail()
