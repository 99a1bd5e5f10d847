"""Two real beat processes on one schedule: every slot starts exactly one run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.ops.conftest import beat
from tests.support.polling import wait_for

INTERVAL = 3
ENTRY = "signup-digest"


def digest_runs(manager, since: datetime) -> list[dict]:  # type: ignore[no-untyped-def]
    items, _ = manager.list(name="signup_digest", limit=500)
    return [r for r in items if r["created_at"] >= since]


def slot_of(run: dict) -> datetime:  # type: ignore[type-arg]
    prefix = f"beat:{ENTRY}:"
    assert run["idempotency_key"].startswith(prefix), run["idempotency_key"]
    return datetime.fromisoformat(run["idempotency_key"][len(prefix):])


@pytest.mark.slow
def test_two_beats_and_a_restart_start_each_slot_exactly_once(manager, ops_worker, tmp_path):
    env = {"SIGNUP_DIGEST_SCHEDULE": str(INTERVAL)}
    since = datetime.now(UTC)
    beat_a = beat(tmp_path / "a" / "schedule", env)
    beat_b = beat(tmp_path / "b" / "schedule", env)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    beat_a.start()
    beat_b.start()
    try:
        wait_for(lambda: len(digest_runs(manager, since)) >= 4, timeout=40, what="4 slots")
        # a restarted beat (same schedule file) must not start its current slot again
        beat_a.stop()
        beat_a.start()
        wait_for(lambda: len(digest_runs(manager, since)) >= 8, timeout=40, what="8 slots")
    finally:
        beat_a.stop()
        beat_b.stop()

    def all_finished() -> list[dict] | None:  # type: ignore[type-arg]
        runs = digest_runs(manager, since)
        return runs if all(r["status"] == "succeeded" for r in runs) else None

    runs = wait_for(all_finished, timeout=30, what="every digest run to succeed")
    slots = sorted(slot_of(r) for r in runs)
    assert len(slots) == len(set(slots)), "a slot was started twice"
    # no slot skipped: consecutive, epoch-aligned slots
    assert all(s.timestamp() % INTERVAL == 0 for s in slots)
    assert [b - a for a, b in zip(slots, slots[1:], strict=False)] == [
        timedelta(seconds=INTERVAL)
    ] * (len(slots) - 1)
    for run in runs:
        assert datetime.fromisoformat(run["input"]["scheduled_for"]) == slot_of(run)

    # both beats really sent each slot: the duplicates reached the worker and were absorbed
    sent = sum(
        p.output().count(f"Sending due task {ENTRY}") for p in (beat_a, beat_b)
    )
    log = ops_worker.output()
    started = sum(log.count(f"{ENTRY}:{s.strftime('%Y-%m-%dT%H:%M:%SZ')}") for s in slots)
    assert sent > len(slots) + 3, (sent, len(slots))
    assert log.count("scheduled slot already started") >= sent - len(slots) - 2
    assert started >= sent - 2
