"""Team chat notifications: the interface and the console default."""

from __future__ import annotations

from typing import Protocol

import structlog

from app.settings import Settings

log = structlog.get_logger("stepwise.chat")


class Notifier(Protocol):
    def notify(self, text: str, *, idempotency_key: str) -> None: ...


class ConsoleNotifier:
    def notify(self, text: str, *, idempotency_key: str) -> None:
        log.info("team notification (console)", text=text, key=idempotency_key)


def notifier(settings: Settings) -> Notifier:
    return ConsoleNotifier()
