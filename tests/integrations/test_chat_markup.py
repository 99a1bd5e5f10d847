"""Issue 12, item 15: what a user typed reaches the chat as text, never as markup.

Over real HTTP against the local fake webhook server: the notifier's body is
what Slack or Discord would have received.
"""

from __future__ import annotations

import uuid

from app.integrations.chat import notifier
from app.settings import Settings

HOSTILE = "<!channel> <https://evil.example|Reset your password>"


def token() -> str:
    return uuid.uuid4().hex[:12]


def posted(webhook, path: str, text: str, t: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    notifier(Settings(notify_webhook_url=webhook.url + path)).notify(text, idempotency_key=t)
    [seen] = webhook.requests(t)
    assert seen.path == path
    body: dict = seen.json()  # type: ignore[type-arg]
    return body


def test_slack_markup_in_a_signup_name_neither_notifies_the_channel_nor_disguises_a_link(webhook):
    t = token()
    body = posted(webhook, f"/services/T0/B0/{t}", f"New signup: {HOSTILE} & co {t}", t)
    assert body == {
        "text": "New signup: &lt;!channel&gt; &lt;https://evil.example|Reset your password&gt; "
        f"&amp; co {t}"
    }
    assert "<" not in body["text"] and ">" not in body["text"]


def test_discord_everyone_in_a_signup_name_mentions_nobody(webhook):
    t = token()
    body = posted(
        webhook, f"/api/webhooks/1/{t}", f"New signup: @everyone [Reset](https://evil.example) {t}", t
    )
    assert body["allowed_mentions"] == {"parse": []}
    # the masked link is escaped markdown: Discord shows the brackets, not a disguised link
    assert body["content"] == f"New signup: @everyone \\[Reset\\](https://evil.example) {t}"


def test_discord_user_and_role_mentions_are_shown_as_text(webhook):
    t = token()
    body = posted(webhook, f"/api/webhooks/1/{t}", f"<@123> <@&456> ||spoiler|| {t}", t)
    assert body["content"] == f"\\<@123\\> \\<@&456\\> \\|\\|spoiler\\|\\| {t}"
    assert body["allowed_mentions"] == {"parse": []}


def test_discords_slack_compatible_url_gets_a_slack_body_that_is_escaped_too(webhook):
    t = token()
    body = posted(webhook, f"/api/webhooks/1/{t}/slack", f"{HOSTILE} @everyone @here {t}", t)
    assert set(body) == {"text"}  # Slack's body: Discord's /slack endpoint refuses "content"
    text = body["text"]
    assert text.startswith("&lt;!channel&gt; &lt;https://evil.example|Reset your password&gt; ")
    # Discord parses plain mentions on this endpoint and takes no allowed_mentions
    assert "@everyone" not in text and "@here" not in text
    assert text.endswith(f"@\u200beveryone @\u200bhere {t}")
