"""Billing: the interface, the local default, and the choice by settings.

``STRIPE_API_KEY`` selects Stripe (``STRIPE_API_BASE`` points it elsewhere,
e.g. a local fake or stripe-mock); otherwise a deterministic local customer id.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import structlog

from app.engine.errors import NonRetryableError
from app.settings import Settings

log = structlog.get_logger("stepwise.billing")


class Billing(Protocol):
    def create_customer(self, *, email: str, name: str, idempotency_key: str) -> str:
        """Create (or, for a repeated key, return) the customer; return its id."""
        ...


class ConsoleBilling:
    """A deterministic local customer id: the same key gives the same id."""

    def create_customer(self, *, email: str, name: str, idempotency_key: str) -> str:
        customer = "cus_local_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:14]
        log.info("billing customer (console)", email=email, customer=customer)
        return customer


def billing_provider(settings: Settings) -> Billing:
    if settings.stripe_api_key:
        try:
            from app.integrations.stripe_billing import StripeBilling
        except ImportError as exc:  # a deployment problem: retrying will not install it
            raise NonRetryableError(str(exc)) from None
        return StripeBilling(settings)
    return ConsoleBilling()
