"""Slack- and Discord-compatible incoming webhooks over httpx.

The two differ in the body: Slack takes ``{"text": ...}``, Discord
``{"content": ...}``. ``NOTIFY_WEBHOOK_FORMAT`` says which; ``auto`` (the
default) reads it from the URL — Discord's webhooks live under
``/api/webhooks/``, except its Slack-compatible endpoint (the same URL ending
in ``/slack``), which takes Slack's body; Slack-compatible is the common
default (Mattermost, Rocket.Chat, Teams' Slack mode).

The text is always plain text, never markup: it carries what users typed (a
signup's name), and a name like ``<!channel> <https://evil.example|Reset your
password>`` must neither notify a whole channel nor show a disguised link.
Slack's documented escaping (``&``, ``<``, ``>``) makes its control sequences
inert; Discord gets its markdown escaped and ``allowed_mentions`` that allow
no mention at all, so ``@everyone`` pings nobody.
"""

from __future__ import annotations

import re
from typing import Any
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
# Discord parses no mention from the text: no @everyone/@here, no user, no role
NO_MENTIONS: dict[str, list[str]] = {"parse": []}

_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# the characters Discord's markdown gives a meaning (masked links, emphasis, code,
# spoilers, quotes, headings, <@id> mentions); a backslash shows each as itself
_DISCORD_MARKDOWN = re.compile(r"([\\*_~`|\[\]<>#])")
# mentions written out in plain text, which Discord's Slack-compatible endpoint may parse
_EVERYONE = re.compile(r"@(everyone|here)\b", re.IGNORECASE)


def is_discord(url: str) -> bool:
    parts = urlsplit(url)
    return "discord" in (parts.hostname or "").lower() or parts.path.startswith("/api/webhooks/")


def webhook_format(url: str, configured: str = "auto") -> str:
    if configured != "auto":
        return configured
    if is_discord(url) and not urlsplit(url).path.rstrip("/").endswith("/slack"):
        return "discord"
    return "slack"  # Slack itself, Discord's …/api/webhooks/<id>/<token>/slack, Mattermost …


def slack_escape(text: str) -> str:
    """Slack's own escaping: ``&``, ``<`` and ``>`` as entities, nothing else."""
    return "".join(_SLACK_ESCAPES.get(ch, ch) for ch in text)


def discord_escape(text: str) -> str:
    return _DISCORD_MARKDOWN.sub(r"\\\1", text)


def defang_mentions(text: str) -> str:
    """``@everyone`` → ``@\u200beveryone``: reads the same, mentions nobody."""
    return _EVERYONE.sub("@\u200b\\1", text)


def payload(text: str, fmt: str, *, discord_host: bool = False) -> dict[str, Any]:
    """The body for ``fmt``; ``discord_host``: a Slack body sent to Discord's /slack endpoint."""
    if fmt == "discord":
        return {"content": discord_escape(text)[:DISCORD_LIMIT], "allowed_mentions": NO_MENTIONS}
    escaped = slack_escape(text)
    return {"text": defang_mentions(escaped) if discord_host else escaped}


class WebhookNotifier:
    def __init__(self, settings: Settings) -> None:
        assert settings.notify_webhook_url
        self._url = settings.notify_webhook_url
        self._format = webhook_format(self._url, settings.notify_webhook_format)
        self._discord_host = is_discord(self._url)
        self.name = self._format
        self._timeout = settings.integration_timeout
        self._secrets = secrets_of(settings)

    def notify(self, text: str, *, idempotency_key: str) -> None:
        body = payload(text, self._format, discord_host=self._discord_host)
        try:
            response = httpx.post(self._url, json=body, timeout=self._timeout)
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
