"""The body of signup's ``send_welcome_sms`` step (DESIGN §13).

Kept apart from ``signup.py`` so the step can be wired into the workflow's
graph where it belongs (after ``create_user``, skipped without a phone) by
whoever owns that definition; this module only knows how to send.

Like the email step, a send goes through the ``deliveries`` guard: a
redelivered or retried step that finds its key recorded returns the
recorded message id instead of texting the user twice.
"""

from __future__ import annotations

from typing import Any

from app.engine import NonRetryableError, StepContext
from app.integrations.deliveries import deliver_once
from app.integrations.sms import SmsMessage, sms_sender
from app.settings import get_settings

MAX_NAME = 40  # keeps the text in one 160-character segment for most names


class NoPhone(NonRetryableError):
    """The step ran for a signup without a phone; its condition should skip it."""

    code = "no_phone"


def has_phone(ctx: StepContext) -> bool:
    """The step's condition: only signups that gave a phone number get an SMS."""
    return bool(ctx.input.get("phone"))


def welcome_text(name: str, plan: str) -> str:
    short = name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"
    return f"Welcome to Stepwise, {short}! Your {plan} account is ready."


def send_welcome_sms(ctx: StepContext) -> dict[str, Any]:
    """At most one accepted SMS per run; the output names the provider's message id."""
    phone = ctx.input.get("phone")
    if not phone:
        raise NoPhone("the signup has no phone number; this step should have been skipped")
    message = SmsMessage(to=str(phone), body=welcome_text(str(ctx.input["name"]), str(ctx.input["plan"])))
    sender = sms_sender(get_settings())
    delivery = deliver_once(
        run_id=ctx.run_id,
        idempotency_key=ctx.idempotency_key,
        channel="sms",
        provider=sender.name,
        send=lambda: sender.send(message, idempotency_key=ctx.idempotency_key),
    )
    return {"message_sid": delivery.provider_id, "to": message.to, "replayed": delivery.replayed}
