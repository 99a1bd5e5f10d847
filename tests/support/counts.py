"""Counting rows the way an operator would check them in psql."""

from __future__ import annotations

import sqlalchemy as sa


def runs_and_steps_for_key(engine: sa.Engine, key: str) -> tuple[int, int]:
    """How many runs carry this idempotency key, and how many step rows they have."""
    with engine.connect() as c:
        runs = c.execute(
            sa.text("SELECT count(*) FROM workflow_runs WHERE idempotency_key = :k"), {"k": key}
        ).scalar_one()
        steps = c.execute(
            sa.text(
                "SELECT count(*) FROM workflow_steps s JOIN workflow_runs r ON r.id = s.run_id "
                "WHERE r.idempotency_key = :k"
            ),
            {"k": key},
        ).scalar_one()
    return int(runs), int(steps)
