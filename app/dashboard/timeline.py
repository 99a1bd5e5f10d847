"""A run's steps as bars on one time axis (pure: no I/O, no Flask).

The axis starts when the run was created, so time spent queued before the
first step shows as a gap. It ends when the run finished — or, while the run
is still active, at the later of now and the last step's end. A cancelled run
may leave a step running (it is allowed to finish); its bar is cut at the
run's end instead of stretching the axis past the run's duration. Bars are
positioned in percent of that span, so the template only sets ``left`` and
``width``.

A step's bar is its latest attempt; the attempts before it (from the step's
``history``) get thinner bars of their own on the same row, each with how it
ended and its error, so a step that failed twice and then succeeded shows
three bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.dashboard.formatting import format_duration

MIN_WIDTH_PCT = 0.6  # a 2 ms step on a one-minute axis must still be visible
TICKS = 5
ONGOING = frozenset({"running", "retrying"})
FINISHED = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Bar:
    name: str
    position: int
    status: str
    left_pct: float
    width_pct: float
    seconds: float
    ongoing: bool
    attempt: int = 0
    error: str = ""


@dataclass(frozen=True)
class Timeline:
    span_seconds: float
    rows: tuple[tuple[Mapping[str, Any], Bar | None], ...]
    ticks: tuple[tuple[float, str], ...]
    # per row, the attempts before the latest one, oldest first
    earlier: tuple[tuple[Bar, ...], ...] = ()


def build_timeline(run: Mapping[str, Any], now: datetime) -> Timeline:
    """Every step gets a row; a step that never started has no bar."""
    steps: Sequence[Mapping[str, Any]] = run["steps"]
    start: datetime = run["created_at"]
    axis_end = _axis_end(run, steps, now)
    span = max((axis_end - start).total_seconds(), 0.001)

    rows = []
    earlier = []
    for step in steps:
        earlier.append(_earlier_attempts(step, start, axis_end, span))
        bar = None
        begun = step.get("started_at")
        if begun is not None:
            begun = min(begun, axis_end)
            end = min(_step_end(step, now), axis_end)
            left = _pct((begun - start).total_seconds(), span)
            width = max(_pct((end - begun).total_seconds(), span), MIN_WIDTH_PCT)
            bar = Bar(
                name=step["name"],
                position=step["position"],
                status=step["status"],
                left_pct=round(min(left, 100 - MIN_WIDTH_PCT), 3),
                width_pct=round(min(width, 100 - min(left, 100 - MIN_WIDTH_PCT)), 3),
                seconds=max((end - begun).total_seconds(), 0.0),
                ongoing=step["status"] in ONGOING and step.get("finished_at") is None,
            )
        rows.append((step, bar))
    ticks = tuple(
        (round(100 * i / (TICKS - 1), 3), format_duration(span * i / (TICKS - 1)) if i else "0")
        for i in range(TICKS)
    )
    return Timeline(span_seconds=span, rows=tuple(rows), ticks=ticks, earlier=tuple(earlier))


def _earlier_attempts(
    step: Mapping[str, Any], start: datetime, axis_end: datetime, span: float
) -> tuple[Bar, ...]:
    """Attempts that began before the step's latest one, placed like its bar."""
    latest = step.get("started_at")
    bars = []
    for entry in step.get("history") or ():
        begun, ended = _instant(entry.get("started_at")), _instant(entry.get("finished_at"))
        if begun is None or ended is None or (latest is not None and begun >= latest):
            continue
        begun, ended = min(begun, axis_end), min(max(ended, begun), axis_end)
        left = min(_pct((begun - start).total_seconds(), span), 100 - MIN_WIDTH_PCT)
        width = max(_pct((ended - begun).total_seconds(), span), MIN_WIDTH_PCT)
        error = entry.get("error") or {}
        bars.append(Bar(
            name=step["name"],
            position=step["position"],
            status=str(entry.get("status") or ""),
            left_pct=round(left, 3),
            width_pct=round(min(width, 100 - left), 3),
            seconds=(ended - begun).total_seconds(),
            ongoing=False,
            attempt=int(entry.get("attempt") or 0),
            error=f"{error.get('type', '')}: {error.get('message', '')}" if error else "",
        ))
    return tuple(bars)


def _instant(value: Any) -> datetime | None:
    """History times are ISO strings (they live in JSON); step columns are datetimes."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _axis_end(run: Mapping[str, Any], steps: Sequence[Mapping[str, Any]], now: datetime) -> datetime:
    start: datetime = run["created_at"]
    finished: datetime | None = run.get("finished_at")
    if finished is not None and run["status"] in FINISHED:
        return max(finished, start)
    ends = [start] + [_step_end(s, now) for s in steps if s.get("started_at") is not None]
    if run["status"] in ("pending", "running"):
        ends.append(now)
    return max(ends)


def _step_end(step: Mapping[str, Any], now: datetime) -> datetime:
    finished: datetime | None = step.get("finished_at")
    started: datetime = step["started_at"]
    if finished is not None and finished >= started:
        return finished
    return now if step["status"] in ONGOING else started


def _pct(seconds: float, span: float) -> float:
    return max(0.0, min(100.0, 100.0 * seconds / span))
