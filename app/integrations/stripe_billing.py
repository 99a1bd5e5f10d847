"""Stripe customers through the official client (the ``stripe`` extra).

The step's idempotency key is sent as Stripe's ``Idempotency-Key``: Stripe
answers a repeated key with the first result for 24 hours, so a retried or
redelivered step never creates a second customer. The client's own network
retries are off — the workflow's retry policy owns retries — and requests go
through the client's default transport (requests) with ``INTEGRATION_TIMEOUT``.

API version: every request carries ``Stripe-Version`` = the version the
installed ``stripe`` library pins (``stripe.api_version``; stripe 16.1 pins
``2026-10-28.endive``), not the account's default, so a Stripe dashboard
upgrade never changes what this code receives. Upgrading the library is what
moves it, and docs/integrations.md says so.
"""

from __future__ import annotations

import threading

from app.integrations.errors import (
    from_status,
    from_transport,
    header,
    provider_message,
    secrets_of,
)
from app.settings import Settings

try:
    import stripe
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "STRIPE_API_KEY is set but the stripe client is not installed: "
        "pip install 'stepwise[stripe]'"
    ) from exc

STRIPE_API_VERSION: str = stripe.api_version

_lock = threading.Lock()
_clients: dict[tuple[str, str | None, float], stripe.StripeClient] = {}


def _client(settings: Settings) -> stripe.StripeClient:
    """One client (and one connection pool) per process and configuration."""
    assert settings.stripe_api_key
    key = (settings.stripe_api_key, settings.stripe_api_base, settings.integration_timeout)
    with _lock:
        client = _clients.get(key)
        if client is None:
            base = settings.stripe_api_base
            addresses = {"api": base.rstrip("/")} if base else {}
            client = stripe.StripeClient(
                settings.stripe_api_key,
                base_addresses=addresses,  # type: ignore[arg-type]
                max_network_retries=0,
                http_client=stripe.RequestsClient(timeout=settings.integration_timeout),
            )
            _clients[key] = client
    return client


class StripeBilling:
    name = "stripe"

    def __init__(self, settings: Settings) -> None:
        self._client = _client(settings)
        self._secrets = secrets_of(settings)

    def create_customer(self, *, email: str, name: str, idempotency_key: str) -> str:
        try:
            customer = self._client.v1.customers.create(
                params={
                    "email": email,
                    "name": name,
                    "metadata": {"stepwise_key": idempotency_key},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.APIConnectionError as exc:
            raise from_transport(self.name, exc, secrets=self._secrets) from None
        except stripe.StripeError as exc:
            if exc.http_status is None:
                raise from_transport(self.name, exc, secrets=self._secrets) from None
            raise from_status(
                self.name,
                exc.http_status,
                exc.user_message or provider_message(exc.http_body),
                retry_after=header(exc.headers, "Retry-After"),
                secrets=self._secrets,
            ) from None
        return str(customer.id)
