"""Slack- and Discord-compatible incoming webhooks over httpx.

The two differ only in the body: Slack takes ``{"text": ...}``, Discord
``{"content": ...}``. ``NOTIFY_WEBHOOK_FORMAT`` says which; ``auto`` (the
default) reads it from the URL — Discord's webhooks live under
``/api/webhooks/``, and Slack-compatible is the common default (Mattermost,
Rocket.Chat, Teams' Slack mode).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from app.integrations.errors import (
    from_status,
    from_transport,
    header,
    provider_message,
    secrets_of,
)
from app.settings import Settings

DISCORD_LIMIT = 2000  # Discord rejects longer content with a 400


def webhook_format(url: str, configured: str = "auto") -> str:
    if configured != "auto":
        return configured
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if "discord" in host or parts.path.startswith("/api/webhooks/"):
        return "discord"
    return "slack"


def payload(text: str, fmt: str) -> dict[str, str]:
    return {"content": text[:DISCORD_LIMIT]} if fmt == "discord" else {"text": text}


class WebhookNotifier:
    def __init__(self, settings: Settings) -> None:
        assert settings.notify_webhook_url
        self._url = settings.notify_webhook_url
        self._format = webhook_format(self._url, settings.notify_webhook_format)
        self.name = self._format
        self._timeout = settings.integration_timeout
        self._secrets = secrets_of(settings)

    def notify(self, text: str, *, idempotency_key: str) -> None:
        try:
            response = httpx.post(
                self._url, json=payload(text, self._format), timeout=self._timeout
            )
        except httpx.TransportError as exc:  # connect/read timeouts, refused, reset
            raise from_transport(self.name, exc, secrets=self._secrets) from None
        if response.is_success:
            return
        raise from_status(
            self.name,
            response.status_code,
            provider_message(response.content),
            retry_after=header(response.headers, "Retry-After"),
            secrets=self._secrets,
        )
