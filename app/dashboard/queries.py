"""Read-only look-ups the dashboard needs beyond ``WorkflowManager.list``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.engine.manager import RUN_COLUMNS
from app.engine.models import runs


def runs_by_idempotency_key(engine: Engine, key: str, limit: int = 50) -> list[dict[str, Any]]:
    """Runs started with ``key`` (one per workflow at most): the unique
    (idempotency_key, name) index answers it without a scan."""
    query = (
        sa.select(*RUN_COLUMNS)
        .where(runs.c.idempotency_key == key)
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as c:
        return [dict(r) for r in c.execute(query).mappings()]
