"""``app.engine.bulk`` against the real database: what a call that runs out of time does."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from app.engine.bulk import OUT_OF_TIME, bulk_transition
from app.engine.queries import RunFilter


def test_runs_not_reached_in_time_are_untouched_and_say_call_again(manager):
    with manager.engine.connect() as c:
        since: datetime = c.execute(sa.text("SELECT now()")).scalar_one()
    ids = [manager.start("flaky", {"fatal": True}).run["id"] for _ in range(3)]
    window = RunFilter(name="flaky", status="pending", created_after=since)
    try:
        result = bulk_transition(manager, "cancel", window, time_budget=0.0)
        assert result.matched == 3 and result.changed == []
        assert [s["reason"] for s in result.skipped] == [OUT_OF_TIME] * 3
        assert {manager.get(i)["status"] for i in ids} == {"pending"}  # no worker here
    finally:
        again = bulk_transition(manager, "cancel", window)
        assert not any(s["reason"] == OUT_OF_TIME for s in again.skipped)
