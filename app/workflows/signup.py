"""``signup``: create the account, set up billing, welcome the user, tell the team,
and text them when they gave a phone number."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from marshmallow import Schema, fields, validate
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.designer.actions import reusable
from app.engine import NonRetryableError, StepContext, Workflow
from app.engine.models import users
from app.integrations.billing import billing_provider
from app.integrations.chat import notifier
from app.integrations.deliveries import deliver_once
from app.integrations.email import EmailMessage, email_sender
from app.settings import E164, get_settings
from app.workflows.signup_sms import has_phone, send_welcome_sms


class SignupInput(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    plan = fields.String(required=True, validate=validate.OneOf(["free", "pro"]))
    phone = fields.String(
        allow_none=True,
        validate=validate.Regexp(E164, error="must be a phone number in E.164, e.g. +14155550100"),
        metadata={
            "description": "optional mobile number in E.164 (+, country code, number); "
            "with one, a welcome SMS is sent",
            "example": "+14155550100",
        },
    )


class DuplicateSignup(NonRetryableError):
    code = "duplicate_signup"


signup = Workflow(
    "signup",
    input_schema=SignupInput,
    description="Create the account, set up billing, send the welcome email, tell the team.",
)


@signup.step(transactional=True)
def create_user(ctx: StepContext, session: Session) -> dict[str, Any]:
    """Exactly once: the insert commits with the step's checkpoint."""
    email = str(ctx.input["email"]).strip().lower()
    user_id = session.execute(
        insert(users)
        .values(
            id=uuid.uuid4(),
            email=email,
            name=ctx.input["name"],
            plan=ctx.input["plan"],
            run_id=ctx.run_id,
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(users.c.id)
    ).scalar_one_or_none()
    if user_id is None:
        owner = session.execute(sa.select(users.c.run_id).where(users.c.email == email)).scalar()
        raise DuplicateSignup(
            f"a user with email {email} already exists", details={"created_by_run": str(owner)}
        )
    return {"user_id": str(user_id), "email": email}


@reusable(
    "create_billing_customer",
    params={
        "type": "object",
        "properties": {
            "email": {"type": "string", "minLength": 3, "description": "the customer's email"},
            "name": {"type": "string", "minLength": 1, "description": "the customer's name"},
        },
        "required": ["email", "name"],
        "additionalProperties": False,
    },
    outputs=("customer_id",),
)
def create_billing_customer(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Create a billing customer (Stripe when configured), once per run and step."""
    customer = billing_provider(get_settings()).create_customer(
        email=str(params["email"]), name=str(params["name"]), idempotency_key=ctx.idempotency_key,
    )
    return {"customer_id": customer}


@signup.step()
def provision_plan(ctx: StepContext) -> dict[str, Any]:
    """Pro plans get a billing customer: the same block designed workflows can use."""
    if ctx.input["plan"] != "pro":
        return {"plan": "free", "customer_id": None}
    params = {"email": ctx.outputs["create_user"]["email"], "name": str(ctx.input["name"])}
    return {"plan": "pro", **create_billing_customer(ctx, params)}


@signup.step()
def send_welcome_email(ctx: StepContext) -> dict[str, Any]:
    """At most one accepted send per run: a redelivery finds the delivery record."""
    settings = get_settings()
    message = EmailMessage(
        to=ctx.outputs["create_user"]["email"],
        subject=f"Welcome to Stepwise, {ctx.input['name']}!",
        text=(
            f"Hi {ctx.input['name']},\n\nyour {ctx.input['plan']} account is ready.\n\n"
            "— the Stepwise team"
        ),
        sender=settings.email_from,
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


@signup.step()
def notify_team(ctx: StepContext) -> dict[str, Any]:
    text = f"New signup: {ctx.input['name']} <{ctx.outputs['create_user']['email']}> ({ctx.input['plan']})"
    chat = notifier(get_settings())

    def post() -> None:
        chat.notify(text, idempotency_key=ctx.idempotency_key)

    delivery = deliver_once(
        run_id=ctx.run_id,
        idempotency_key=ctx.idempotency_key,
        channel="chat",
        provider=chat.name,
        send=post,
    )
    return {"notified": True, "replayed": delivery.replayed}


# With a phone, a welcome SMS (Twilio when configured); without one, skipped.
signup.step(name="send_welcome_sms", when=has_phone)(send_welcome_sms)
