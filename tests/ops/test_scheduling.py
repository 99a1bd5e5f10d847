"""Slots are a function of the schedule and the clock only, so every beat agrees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.scheduling import (
    every,
    format_slot,
    parse_schedule,
    previous_fire,
    schedule_key,
    slot_for,
)
from app.settings import ConfigError, load_settings


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_every_slots_are_aligned_to_the_epoch_not_to_when_beat_started():
    three = every(3)
    assert three.slot(at("2026-01-01 00:00:04.900")) == at("2026-01-01 00:00:03")
    assert three.slot(at("2026-01-01 00:00:05.999")) == at("2026-01-01 00:00:03")
    assert three.slot(at("2026-01-01 00:00:06")) == at("2026-01-01 00:00:06")


def test_every_is_due_once_per_slot():
    now = at("2026-01-01 00:00:07")
    three = every(3, nowfun=lambda: now)
    due, wait = three.is_due(at("2026-01-01 00:00:05.5"))  # last sent in the 03 slot
    assert due and wait == pytest.approx(2.0)
    due, wait = three.is_due(at("2026-01-01 00:00:06.01"))  # already sent in the 06 slot
    assert not due and wait == pytest.approx(2.0)


def test_a_crontab_slot_is_its_latest_fire_time_at_or_before_now():
    daily = parse_schedule("0 0 * * *")
    assert previous_fire(daily, at("2026-03-10 13:45")) == at("2026-03-10 00:00")
    assert previous_fire(daily, at("2026-03-10 00:00:30")) == at("2026-03-10 00:00")
    weekdays = parse_schedule("30 7 * * 1-5")
    # Sunday 2026-03-08 → Friday's 07:30
    assert previous_fire(weekdays, at("2026-03-08 12:00")) == at("2026-03-06 07:30")
    assert previous_fire(weekdays, at("2026-03-09 07:29")) == at("2026-03-06 07:30")
    assert previous_fire(weekdays, at("2026-03-09 07:31")) == at("2026-03-09 07:30")
    leap = parse_schedule("0 12 29 2 *")
    assert previous_fire(leap, at("2027-06-01 00:00")) == at("2024-02-29 12:00")


def test_plain_intervals_have_no_slot_and_keys_name_entry_and_slot():
    assert slot_for(timedelta(seconds=5), at("2026-01-01 00:00:00")) is None
    slot = slot_for(every(60), at("2026-01-01 10:00:59"))
    assert slot is not None
    assert schedule_key("signup-digest", format_slot(slot)) == (
        "beat:signup-digest:2026-01-01T10:00:00Z"
    )


def test_a_bad_signup_digest_schedule_fails_at_start_naming_the_variable():
    assert load_settings({"SIGNUP_DIGEST_SCHEDULE": "15"}).signup_digest_schedule == "15"
    assert load_settings({}).signup_digest_schedule == "0 0 * * *"
    for bad in ("0", "-3", "every day", "0 0 * *"):
        with pytest.raises(ConfigError, match="SIGNUP_DIGEST_SCHEDULE"):
            load_settings({"SIGNUP_DIGEST_SCHEDULE": bad})
