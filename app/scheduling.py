"""Schedules whose slots are the same for every beat process.

A scheduled workflow run is keyed by its schedule entry and its *slot*: the
due time it belongs to. Two beat processes (or one restarted beat) agree on
the slot without talking to each other because a slot depends only on the
schedule and the clock, never on when a particular beat started:

* ``every(seconds)`` fires on multiples of its interval since the Unix epoch
  (every 3 s → …:00, …:03, …:06), unlike Celery's plain interval, which
  counts from each beat's own last run;
* a ``crontab`` slot is its latest fire time at or before now.

The run's idempotency key is ``beat:<entry>:<slot>``; the engine's unique
(idempotency_key, name) constraint makes the second start of a slot a no-op.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.schedules import BaseSchedule, crontab, schedstate, schedule

START_SCHEDULED = "stepwise.start_scheduled"
# a crontab can name a day that comes round once in years (29 February on a Monday)
CRONTAB_LOOKBACK_DAYS = 366 * 8


class every(schedule):  # noqa: N801  (reads like celery's ``crontab``)
    """A fixed interval aligned to the epoch, so every beat agrees on its slots."""

    def __init__(
        self,
        run_every: float | timedelta | None = None,
        relative: bool = False,
        nowfun: Any = None,
        app: Any = None,
    ) -> None:
        super().__init__(run_every, relative=relative, nowfun=nowfun, app=app)
        if self.seconds <= 0:
            raise ValueError("an every() schedule needs a positive interval")

    def slot(self, now: datetime) -> datetime:
        start = math.floor(now.timestamp() / self.seconds) * self.seconds
        return datetime.fromtimestamp(start, UTC)

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = self.maybe_make_aware(self.now())
        current = self.slot(now)
        due = self.maybe_make_aware(last_run_at) < current
        next_slot = current + self.run_every
        return schedstate(due, max((next_slot - now).total_seconds(), 0.01))

    def __repr__(self) -> str:
        return f"<every {self.seconds:g}s, epoch-aligned>"


def previous_fire(cron: crontab, now: datetime) -> datetime:
    """The latest time at or before ``now`` (UTC) that ``cron`` fires."""
    now = now.astimezone(UTC).replace(second=0, microsecond=0)
    minutes = sorted(cron.minute, reverse=True)
    hours = sorted(cron.hour, reverse=True)
    for back in range(CRONTAB_LOOKBACK_DAYS):
        day = now.date() - timedelta(days=back)
        if (
            day.month not in cron.month_of_year
            or day.day not in cron.day_of_month
            or day.isoweekday() % 7 not in cron.day_of_week  # celery: 0 is Sunday
        ):
            continue
        for hour in hours:
            for minute in minutes:
                fire = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                if fire <= now:
                    return fire
    raise ValueError(f"{cron!r} has not fired in the last {CRONTAB_LOOKBACK_DAYS} days")


def slot_for(sched: BaseSchedule | Any, now: datetime) -> datetime | None:
    """The slot a send at ``now`` belongs to, or ``None`` for schedules without slots."""
    if isinstance(sched, every):
        return sched.slot(now)
    if isinstance(sched, crontab):
        return previous_fire(sched, now)
    return None


def format_slot(slot: datetime) -> str:
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_key(entry: str, slot: str) -> str:
    """The idempotency key of the run that ``entry`` starts for ``slot``."""
    return f"beat:{entry}:{slot}"


def parse_schedule(spec: str) -> every | crontab:
    """``"3"`` → every 3 s (epoch-aligned); ``"0 7 * * 1-5"`` → a crontab (UTC).

    Fields of a crontab are in the usual order: minute, hour, day of month,
    month, day of week.
    """
    text = spec.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return every(seconds)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"{spec!r} is neither a number of seconds nor a 5-field crontab expression"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


def scheduled_workflow(
    workflow: str, when: every | crontab, payload: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A beat entry that starts ``workflow`` once per slot of ``when``.

    A workflow whose input schema has a ``scheduled_for`` field gets the slot
    there, so a run that is retried later still covers the same period.
    """
    return {
        "task": START_SCHEDULED,
        "schedule": when,
        "kwargs": {"workflow": workflow, "payload": payload or {}},
    }
