from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.dashboard.timeline import MIN_WIDTH_PCT, build_timeline

T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(position: int, status: str, start: float | None, end: float | None) -> dict:
    return {
        "name": f"s{position}",
        "position": position,
        "status": status,
        "started_at": None if start is None else at(start),
        "finished_at": None if end is None else at(end),
    }


def run(status: str, steps: list[dict], finished: float | None) -> dict:
    return {
        "status": status,
        "created_at": T0,
        "finished_at": None if finished is None else at(finished),
        "steps": steps,
    }


def test_bars_are_placed_to_scale_from_run_creation_to_its_end():
    tl = build_timeline(
        run("succeeded", [step(0, "succeeded", 1, 3), step(1, "succeeded", 3, 10)], 10),
        now=at(100),
    )
    assert tl.span_seconds == 10
    (_, first), (_, second) = tl.rows
    assert (first.left_pct, first.width_pct) == (10.0, 20.0)
    assert (second.left_pct, second.width_pct) == (30.0, 70.0)
    assert tl.ticks[0] == (0.0, "0") and tl.ticks[-1] == (100.0, "10.0 s")


def test_a_step_still_running_extends_to_now():
    tl = build_timeline(run("running", [step(0, "running", 2, None)], None), now=at(4))
    ((_, bar),) = tl.rows
    assert bar.ongoing and (bar.left_pct, bar.width_pct) == (50.0, 50.0)


def test_steps_that_never_started_have_no_bar():
    tl = build_timeline(
        run("failed", [step(0, "failed", 0, 2), step(1, "pending", None, None)], 2), now=at(9)
    )
    assert tl.rows[0][1] is not None and tl.rows[1][1] is None


def test_an_instant_step_is_still_visible_and_inside_the_track():
    tl = build_timeline(
        run("succeeded", [step(0, "succeeded", 0, 100), step(1, "succeeded", 100, 100)], 100),
        now=at(100),
    )
    bar = tl.rows[1][1]
    assert bar.width_pct >= MIN_WIDTH_PCT - 1e-9
    assert bar.left_pct + bar.width_pct <= 100.0 + 1e-9


def test_a_cancelled_run_with_a_step_left_running_ends_at_its_cancel():
    tl = build_timeline(
        run("cancelled", [step(0, "succeeded", 0, 2), step(1, "running", 2, None)], 4),
        now=at(600),
    )
    assert tl.span_seconds == 4
    assert tl.ticks[-1] == (100.0, "4.0 s")
    bar = tl.rows[1][1]
    assert (bar.left_pct, bar.width_pct) == (50.0, 50.0)


def test_a_step_that_finished_after_the_cancel_is_cut_at_the_run_end():
    tl = build_timeline(
        run("cancelled", [step(0, "succeeded", 0, 9), step(1, "pending", None, None)], 3),
        now=at(20),
    )
    assert tl.span_seconds == 3
    assert tl.rows[0][1].width_pct == 100.0


def test_earlier_attempts_get_their_own_bars_with_their_errors():
    s = step(0, "succeeded", 6, 8)
    s["history"] = [
        {"attempt": 1, "status": "failed", "started_at": at(0).isoformat(),
         "finished_at": at(1).isoformat(), "error": {"type": "Boom", "message": "503"}},
        {"attempt": 2, "status": "failed", "started_at": at(3).isoformat(),
         "finished_at": at(4).isoformat(), "error": {"type": "Boom", "message": "503 again"}},
        {"attempt": 3, "status": "succeeded", "started_at": at(6).isoformat(),
         "finished_at": at(8).isoformat(), "error": None},
    ]
    tl = build_timeline(run("succeeded", [s], 10), now=at(100))
    (bar,) = [b for _, b in tl.rows]
    assert (bar.left_pct, bar.width_pct) == (60.0, 20.0)  # the latest attempt
    first, second = tl.earlier[0]
    assert (first.attempt, first.left_pct, first.width_pct) == (1, 0.0, 10.0)
    assert (second.attempt, second.left_pct, second.error) == (2, 30.0, "Boom: 503 again")
