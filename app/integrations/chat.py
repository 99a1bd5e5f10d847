"""Team chat notifications: the interface, the console default, the choice by settings.

``NOTIFY_WEBHOOK_URL`` selects an incoming webhook (Slack or Discord, see
``webhook_chat``); otherwise the console default logs the text.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from app.settings import Settings

log = structlog.get_logger("stepwise.chat")


class Notifier(Protocol):
    name: str

    def notify(self, text: str, *, idempotency_key: str) -> None: ...


class ConsoleNotifier:
    name = "console"

    def notify(self, text: str, *, idempotency_key: str) -> None:
        log.info("team notification (console)", text=text, key=idempotency_key)


def notifier(settings: Settings) -> Notifier:
    if settings.notify_webhook_url:
        from app.integrations.webhook_chat import WebhookNotifier

        return WebhookNotifier(settings)
    return ConsoleNotifier()
