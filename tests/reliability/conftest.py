"""Fault-injection scenarios: real processes, real providers' clients against
local fakes, and counts of what happened — started, succeeded, failed, lost, and
side effects per idempotency key."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest

from tests.support.fakes.http import Seen
from tests.support.fakes.providers import (
    SENDGRID_KEY,
    STRIPE_KEY,
    FakeSendGrid,
    FakeStripe,
    FakeWebhook,
)

# the provider fakes (sendgrid, stripe_api, webhook) are shared fixtures:
# tests/support/fakes/fixtures.py

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def provider_env(sendgrid, stripe_api, webhook) -> dict[str, str]:
    return {
        "SENDGRID_API_KEY": SENDGRID_KEY,
        "SENDGRID_API_HOST": sendgrid.url,
        "STRIPE_API_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": stripe_api.url,
        "NOTIFY_WEBHOOK_URL": webhook.url + "/services/T000/B000/reliability",
        "INTEGRATION_TIMEOUT": "30",
        "WORKFLOW_STEP_TIMEOUT": "8",
        "WORKFLOW_RETRY_DELAY": "0.2",
    }


def sendgrid_key(seen: Seen) -> str:
    personalization = seen.json()["personalizations"][0]
    return str(personalization.get("custom_args", {}).get("stepwise_idempotency_key"))


def accepted_sendgrid_per_key(fake: FakeSendGrid, run_ids: Iterable[Any]) -> Counter[str]:
    """Requests SendGrid accepted (held ones were answered 503), per idempotency key."""
    wanted = {f"{rid}:send_welcome_email" for rid in run_ids}
    held = list(getattr(fake, "held", []))
    counts: Counter[str] = Counter()
    for seen in fake.requests():
        key = sendgrid_key(seen)
        if key in wanted and seen not in held:
            counts[key] += 1
    return counts


def stripe_per_key(fake: FakeStripe, run_ids: Iterable[Any]) -> Counter[str]:
    wanted = {f"{rid}:provision_plan" for rid in run_ids}
    return Counter(
        s.headers.get("idempotency-key", "")
        for s in fake.requests()
        if s.headers.get("idempotency-key") in wanted
    )


def webhook_per_run(fake: FakeWebhook, run_ids: Iterable[Any], emails: dict[Any, str]) -> Counter[Any]:
    counts: Counter[Any] = Counter()
    for seen in fake.requests():
        text = json.loads(seen.body).get("text", "")
        for rid in run_ids:
            if emails[rid] in text:
                counts[rid] += 1
    return counts


def tally(manager: Any, run_ids: Iterable[Any]) -> Counter[str]:
    return Counter(manager.get(rid)["status"] for rid in run_ids)
