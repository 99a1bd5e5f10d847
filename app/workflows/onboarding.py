"""``onboarding``: verify the email address, remind once, activate, follow up.

    send_verification_email
      → wait_for_verification   (signal email_verified, up to ONBOARDING_REMINDER_AFTER)
      → send_reminder           (only if that wait timed out)
      → wait_after_reminder     (only then; until ONBOARDING_VERIFY_TIMEOUT after the start)
      → send_activation_email ∥ notify_team      (only if verified)
      → wait_before_followup    (a durable sleep of ONBOARDING_FOLLOWUP_AFTER)
      → send_followup_email

Every wait holds no worker slot; a verification that arrives before the run
reaches its wait is kept. Not verified in time: the later steps are skipped and
the run succeeds with ``{"verified": false}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from marshmallow import Schema, fields, validate

from app.engine import StepContext, Workflow
from app.integrations.chat import notifier
from app.integrations.deliveries import deliver_once
from app.integrations.email import EmailMessage, email_sender
from app.settings import get_settings

SIGNAL = "email_verified"


class OnboardingInput(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


def verified(outputs: Mapping[str, Any]) -> bool:
    """A wait that got the signal (rather than timing out) has verified the address."""
    return any(
        isinstance(outputs.get(wait), dict) and not outputs[wait].get("timed_out")
        for wait in ("wait_for_verification", "wait_after_reminder")
    )


def _is_verified(ctx: StepContext) -> bool:
    return verified(ctx.outputs)


def _first_wait_timed_out(ctx: StepContext) -> bool:
    return bool(ctx.outputs.get("wait_for_verification", {}).get("timed_out"))


def _result(ctx: StepContext) -> dict[str, Any]:
    return {"verified": verified(ctx.outputs), "email": ctx.input["email"]}


onboarding = Workflow(
    "onboarding",
    input_schema=OnboardingInput,
    signals=(SIGNAL,),
    result=_result,
    description="Verify the address (one reminder), activate, tell the team, follow up later.",
)


def _send(ctx: StepContext, subject: str, text: str) -> dict[str, Any]:
    """One email per step and run: a redelivery finds the delivery record."""
    settings = get_settings()
    message = EmailMessage(
        to=str(ctx.input["email"]), subject=subject, text=text, sender=settings.email_from
    )
    sender = email_sender(settings)
    delivery = deliver_once(
        run_id=ctx.run_id,
        idempotency_key=ctx.idempotency_key,
        channel="email",
        provider=sender.name,
        send=lambda: sender.send(message, idempotency_key=ctx.idempotency_key),
    )
    return {"message_id": delivery.provider_id, "to": message.to, "replayed": delivery.replayed}


@onboarding.step()
def send_verification_email(ctx: StepContext) -> dict[str, Any]:
    return _send(
        ctx,
        "Please verify your email address",
        f"Hi {ctx.input['name']},\n\nplease confirm this address to finish signing up.\n"
        f"(reference {ctx.run_id})",
    )


onboarding.wait_for_signal(
    "wait_for_verification",
    signal=SIGNAL,
    timeout=lambda ctx: get_settings().onboarding_reminder_after,
)


@onboarding.step(when=_first_wait_timed_out)
def send_reminder(ctx: StepContext) -> dict[str, Any]:
    return _send(
        ctx,
        "Reminder: verify your email address",
        f"Hi {ctx.input['name']},\n\nwe still need you to confirm this address.",
    )


def _verify_deadline(ctx: StepContext) -> Any:
    assert ctx.created_at is not None
    return ctx.created_at + timedelta(seconds=get_settings().onboarding_verify_timeout)


onboarding.wait_for_signal(
    "wait_after_reminder",
    signal=SIGNAL,
    timeout=_verify_deadline,
    when=_first_wait_timed_out,
)


@onboarding.step(after=["wait_after_reminder"], when=_is_verified)
def send_activation_email(ctx: StepContext) -> dict[str, Any]:
    return _send(
        ctx, "Your account is active", f"Hi {ctx.input['name']},\n\nthanks, you are all set."
    )


@onboarding.step(after=["wait_after_reminder"], when=_is_verified)
def notify_team(ctx: StepContext) -> dict[str, Any]:
    text = f"Verified: {ctx.input['name']} <{ctx.input['email']}>"
    chat = notifier(get_settings())
    delivery = deliver_once(
        run_id=ctx.run_id,
        idempotency_key=ctx.idempotency_key,
        channel="chat",
        provider=chat.name,
        send=lambda: chat.notify(text, idempotency_key=ctx.idempotency_key),
    )
    return {"notified": True, "replayed": delivery.replayed}


onboarding.sleep(
    "wait_before_followup",
    seconds=lambda ctx: get_settings().onboarding_followup_after,
    after=["send_activation_email", "notify_team"],
    when=_is_verified,
)


@onboarding.step(when=_is_verified)
def send_followup_email(ctx: StepContext) -> dict[str, Any]:
    return _send(
        ctx,
        "How is it going?",
        f"Hi {ctx.input['name']},\n\na couple of days in: anything we can help with?",
    )
