"""The duplicate-send guard: at most one accepted send per step idempotency key.

A step's checkpoint protects everything after it, but not the gap between a
provider accepting a message and the checkpoint: a worker killed there, a lost
lease, or a redelivered message runs the step again. So a send is recorded in
``deliveries`` as soon as the provider accepts it, in its own transaction, and
a step that finds its key recorded returns the recorded result instead of
sending again.

One window remains: a crash after the provider accepted and before the record
commits. Then the next attempt sends again. Providers that accept an
idempotency key (Stripe) close that window on their side; for the others we
pass the key where they let us (a deterministic SMTP ``Message-ID``, SendGrid
``custom_args``) so a duplicate can at least be recognised. See
docs/integrations.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects.postgresql import insert

from app.engine.db import get_engine
from app.engine.models import Delivery as DeliveryRow
from app.engine.models import deliveries
from app.settings import get_settings

log = structlog.get_logger("stepwise.deliveries")


@dataclass(frozen=True)
class Delivery:
    provider: str
    provider_id: str | None
    replayed: bool  # True: found recorded, nothing was sent this time


def _engine() -> sa.Engine:
    return get_engine(get_settings().database_url)


def recorded(idempotency_key: str) -> Delivery | None:
    with _engine().connect() as conn:
        row = conn.execute(
            sa.select(deliveries.c.provider, deliveries.c.provider_id).where(
                deliveries.c.idempotency_key == idempotency_key
            )
        ).one_or_none()
    return None if row is None else Delivery(row.provider, row.provider_id, replayed=True)


def deliver_once(
    *,
    run_id: uuid.UUID,
    idempotency_key: str,
    channel: str,
    provider: str,
    send: Callable[[], str | None],
) -> Delivery:
    """Call ``send`` unless a send with this key was already accepted.

    The step's lease guarantees one live attempt at a time, so check-then-send
    needs no lock; the insert still tolerates a conflict (a record written by
    an attempt whose lease we have since taken over).
    """
    earlier = recorded(idempotency_key)
    if earlier is not None:
        log.info("already delivered; not sending again", channel=channel, key=idempotency_key)
        return earlier
    provider_id = send()
    with _engine().begin() as conn:
        conn.execute(
            insert(DeliveryRow)
            .values(
                idempotency_key=idempotency_key,
                run_id=run_id,
                channel=channel,
                provider=provider,
                provider_id=provider_id,
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
        )
    return Delivery(provider, provider_id, replayed=False)
