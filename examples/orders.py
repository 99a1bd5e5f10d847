"""``order_fulfilment``: reserve stock → charge → ship → notify.

The workflow built step by step in docs/writing-workflows.md. Enable it with
``WORKFLOW_MODULES=app.workflows.signup,examples.orders``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
import structlog
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from app.engine import NonRetryableError, RetryPolicy, StepContext, Workflow
from app.engine.db import get_engine
from app.settings import get_settings

log = structlog.get_logger("examples.orders")


class OrderInput(Schema):
    order_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    sku = fields.String(required=True, validate=validate.Length(min=1, max=64))
    quantity = fields.Integer(required=True, validate=validate.Range(min=1, max=1000))
    amount_cents = fields.Integer(required=True, validate=validate.Range(min=1))
    email = fields.Email(required=True)


class OutOfStock(NonRetryableError):
    """Another attempt will not make stock appear: fail the run at once."""


class CardDeclined(NonRetryableError):
    pass


orders = Workflow(
    "order_fulfilment",
    input_schema=OrderInput,
    retry=RetryPolicy(max_attempts=5, initial_delay=0.5, multiplier=2.0, max_delay=30.0),
    step_timeout=30,
    description="Reserve stock, charge the customer, ship, and tell them.",
)


@orders.step(transactional=True)
def reserve_stock(ctx: StepContext, session: Session) -> dict[str, Any]:
    """Exactly once: the reservation commits in the same transaction as the checkpoint."""
    remaining = session.execute(
        sa.text(
            "UPDATE example_stock SET available = available - :qty "
            "WHERE sku = :sku AND available >= :qty RETURNING available"
        ),
        {"sku": ctx.input["sku"], "qty": ctx.input["quantity"]},
    ).scalar()
    if remaining is None:
        raise OutOfStock(f"not enough stock of {ctx.input['sku']} for {ctx.input['quantity']}")
    session.execute(
        sa.text(
            "INSERT INTO example_reservations (order_id, sku, quantity, run_id) "
            "VALUES (:order, :sku, :qty, :run)"
        ),
        {"order": ctx.input["order_id"], "sku": ctx.input["sku"],
         "qty": ctx.input["quantity"], "run": str(ctx.run_id)},
    )
    return {"reserved": ctx.input["quantity"], "remaining": remaining}


class LocalPayments:
    """Stands in for a card processor that, like Stripe, honours idempotency keys:
    a repeated key returns the first charge instead of charging again."""

    def charge(self, *, amount_cents: int, email: str, idempotency_key: str) -> str:
        if email.endswith("@declined.example"):
            raise CardDeclined(f"card of {email} was declined")
        charge_id = "ch_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        with get_engine(get_settings().database_url).begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO example_charges (idempotency_key, charge_id, amount_cents) "
                    "VALUES (:key, :id, :amount) ON CONFLICT (idempotency_key) DO NOTHING"
                ),
                {"key": idempotency_key, "id": charge_id, "amount": amount_cents},
            )
        return charge_id


@orders.step()
def charge(ctx: StepContext) -> dict[str, Any]:
    """At least once — made safe by passing the step's idempotency key to the processor."""
    charge_id = LocalPayments().charge(
        amount_cents=ctx.input["amount_cents"],
        email=ctx.input["email"],
        idempotency_key=ctx.idempotency_key,
    )
    return {"charge_id": charge_id}


@orders.step(max_attempts=8)
def ship(ctx: StepContext) -> dict[str, Any]:
    label = "shp_" + hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:12]
    log.info("shipment booked", order=ctx.input["order_id"], label=label)
    return {"label": label, "charge_id": ctx.outputs["charge"]["charge_id"]}


@orders.step()
def notify_customer(ctx: StepContext) -> dict[str, Any]:
    log.info("customer notified", to=ctx.input["email"], label=ctx.outputs["ship"]["label"])
    return {"notified": ctx.input["email"]}
