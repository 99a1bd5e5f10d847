"""Email: the interface and the console default."""

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
    def send(self, message: EmailMessage, *, idempotency_key: str) -> str:
        """Deliver ``message``; return the provider's message id."""
        ...


@dataclass
class ConsoleEmail:
    """Logs the message instead of sending it (the default)."""

    sent: list[EmailMessage] = field(default_factory=list)

    def send(self, message: EmailMessage, *, idempotency_key: str) -> str:
        self.sent.append(message)
        log.info("email (console)", to=message.to, subject=message.subject, key=idempotency_key)
        return f"console:{idempotency_key}"


def email_sender(settings: Settings) -> EmailSender:
    return ConsoleEmail()
