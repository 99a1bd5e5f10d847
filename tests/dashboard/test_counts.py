"""Per-status counts on the real table: exact under the cap, estimated over it."""

from __future__ import annotations

import sqlalchemy as sa

from app.dashboard.counts import StatusCounter


def insert_runs(engine, status: str, n: int) -> None:
    with engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO workflow_runs (id, name, status, input, created_at, updated_at) "
                "SELECT gen_random_uuid(), 'counted', :status, '{}'::jsonb, now(), now() "
                "FROM generate_series(1, :n)"
            ),
            {"status": status, "n": n},
        )


def test_counts_are_exact_under_the_cap(engine):
    counter = StatusCounter(engine, ttl=0)
    before = counter.counts()["cancelled"].value
    insert_runs(engine, "cancelled", 3)
    after = counter.counts()["cancelled"]
    assert after.exact and after.value == before + 3


def test_counts_over_the_cap_are_estimated_from_table_statistics(engine):
    insert_runs(engine, "succeeded", 40)
    exact = StatusCounter(engine, ttl=0).counts()["succeeded"].value
    capped = StatusCounter(engine, cap=10, ttl=0)
    with engine.connect() as c:
        c.execute(sa.text("ANALYZE workflow_runs"))
        c.commit()
    count = capped.counts()["succeeded"]
    assert not count.exact and not count.at_least
    assert count.label.startswith("≈")
    assert abs(count.value - exact) <= max(5, exact // 5)  # ANALYZE read the whole small table


def test_counts_are_cached_for_the_ttl(engine):
    counter = StatusCounter(engine, ttl=60)
    first = counter.counts()["failed"].value
    insert_runs(engine, "failed", 2)
    assert counter.counts()["failed"].value == first
    assert StatusCounter(engine, ttl=0).counts()["failed"].value == first + 2
