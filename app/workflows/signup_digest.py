"""``signup_digest``: tell the team how many people signed up in a day.

Scheduled daily in ``celerybeat-schedule.py`` (``SIGNUP_DIGEST_SCHEDULE``,
default midnight UTC). The run covers the 24 hours before its slot
(``scheduled_for``), so a run that is retried later still reports the same
day, and the same slot is never reported twice (the slot is its idempotency key).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from marshmallow import Schema, fields
from sqlalchemy.orm import Session

from app.engine import StepContext, Workflow
from app.engine.models import users
from app.integrations.chat import notifier
from app.integrations.deliveries import deliver_once
from app.settings import get_settings

WINDOW = timedelta(hours=24)


class DigestInput(Schema):
    scheduled_for = fields.AwareDateTime(required=True, format="iso")


signup_digest = Workflow(
    "signup_digest",
    input_schema=DigestInput,
    description="Count the signups of the 24 hours before scheduled_for; tell the team.",
)


@signup_digest.step(transactional=True)
def count_signups(ctx: StepContext, session: Session) -> dict[str, Any]:
    until = fields.AwareDateTime().deserialize(ctx.input["scheduled_for"])
    since = until - WINDOW
    by_plan = dict(
        session.execute(
            sa.select(users.c.plan, sa.func.count())
            .where(users.c.created_at >= since, users.c.created_at < until)
            .group_by(users.c.plan)
        ).all()
    )
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "total": sum(by_plan.values()),
        "by_plan": {plan: int(n) for plan, n in sorted(by_plan.items())},
    }


@signup_digest.step()
def notify_team(ctx: StepContext) -> dict[str, Any]:
    counts = ctx.outputs["count_signups"]
    plans = ", ".join(f"{n} {plan}" for plan, n in sorted(counts["by_plan"].items())) or "none"
    text = (
        f"Signups from {counts['since']} to {counts['until']}: {counts['total']} ({plans})"
    )
    chat = notifier(get_settings())
    # a redelivery (or a retry after the post was accepted) must not post twice
    delivery = deliver_once(
        run_id=ctx.run_id,
        idempotency_key=ctx.idempotency_key,
        channel="chat",
        provider=chat.name,
        send=lambda: chat.notify(text, idempotency_key=ctx.idempotency_key),
    )
    return {"notified": True, "text": text, "replayed": delivery.replayed}
