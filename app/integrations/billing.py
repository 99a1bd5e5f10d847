"""Billing: the interface and the local default."""

from __future__ import annotations

import hashlib
from typing import Protocol

import structlog

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
    return ConsoleBilling()
