"""Run notifications against the real database: the 0007 trigger, the listener
thread, ``wait_for_run``, the waiter bound, and a listener whose backend is
terminated under it (``pg_terminate_backend``, Postgres itself keeps running)."""

from __future__ import annotations

import contextlib
import select
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
import sqlalchemy as sa

from app.engine.errors import IllegalTransition
from app.engine.notify import (
    CHANNEL,
    RESET,
    Listener,
    TooManyWaiters,
    parse_payload,
    wait_for_run,
)
from app.runtime import build_manager
from app.settings import get_settings
from tests.support.polling import wait_for

STARTED: list[uuid.UUID] = []


@pytest.fixture(scope="module")
def quiet_manager(database: str):  # type: ignore[no-untyped-def]
    """A manager that sends nothing: its runs stay pending until a test moves them."""
    manager = build_manager(get_settings(), dispatch=None)
    yield manager
    for run_id in STARTED:
        with contextlib.suppress(IllegalTransition):
            manager.cancel(run_id)


def pending_run(manager) -> uuid.UUID:  # type: ignore[no-untyped-def]
    run_id = uuid.UUID(str(manager.start("gated", {"gate": "never"}).run["id"]))
    STARTED.append(run_id)
    return run_id


@pytest.fixture
def listener(engine: sa.Engine) -> Iterator[Listener]:
    own = Listener(engine, max_waiters=50)
    yield own
    own.close()


def raw_listen(database: str):  # type: ignore[no-untyped-def]
    url = sa.make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    conn.cursor().execute(f"LISTEN {CHANNEL}")
    return conn


def notices(conn, seconds: float) -> list[str]:  # type: ignore[no-untyped-def]
    payloads: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([conn], [], [], left)[0]:
            conn.poll()
            payloads += [n.payload for n in conn.notifies]
            conn.notifies.clear()
    return payloads


def test_trigger_notifies_the_run_id_and_status_on_insert_and_on_each_change(
    database, quiet_manager, engine
):
    conn = raw_listen(database)
    try:
        run_id = pending_run(quiet_manager)
        quiet_manager.cancel(run_id)
        with engine.begin() as c:  # a write that changes neither column notifies nothing
            c.execute(sa.text("UPDATE workflow_runs SET recovery_count = 1 WHERE id = :id"),
                      {"id": run_id})
        got = [p for p in notices(conn, 1.0) if p.startswith(str(run_id))]
    finally:
        conn.close()
    assert got == [f"{run_id}:pending", f"{run_id}:cancelled"]
    assert all(len(p) <= 46 for p in got)


def test_a_bulk_writer_can_switch_the_notices_off_for_its_transaction(database, engine):
    conn = raw_listen(database)
    run_id = uuid.uuid4()
    try:
        with engine.begin() as c:
            c.execute(sa.text("SET LOCAL stepwise.notify = 'off'"))
            c.execute(
                sa.text("INSERT INTO workflow_runs (id, name, status, input) "
                        "VALUES (:id, 'bulk', 'cancelled', '{}')"),
                {"id": run_id},
            )
        got = [p for p in notices(conn, 0.5) if p.startswith(str(run_id))]
    finally:
        conn.close()
        with engine.begin() as c:
            c.execute(sa.text("DELETE FROM workflow_runs WHERE id = :id"), {"id": run_id})
    assert got == []


def test_in_status_mode_only_status_changes_notify(database, quiet_manager, engine):
    run_id = pending_run(quiet_manager)
    conn = raw_listen(database)
    try:
        with engine.begin() as c:
            c.execute(sa.text("SET LOCAL stepwise.notify = 'status'"))
            c.execute(sa.text("UPDATE workflow_runs SET updated_at = now() + interval '1 s' "
                              "WHERE id = :id"), {"id": run_id})
        with engine.begin() as c:
            c.execute(sa.text("SET LOCAL stepwise.notify = 'status'"))
            c.execute(sa.text("UPDATE workflow_runs SET status = 'cancelled', "
                              "finished_at = now() WHERE id = :id"), {"id": run_id})
        got = [p for p in notices(conn, 0.7) if p.startswith(str(run_id))]
    finally:
        conn.close()
    assert got == [f"{run_id}:cancelled"]


def test_payloads_that_are_not_ours_are_ignored():
    run_id = uuid.uuid4()
    assert parse_payload(f"{run_id}:failed").status == "failed"
    assert parse_payload("hello") is None
    assert parse_payload("not-a-uuid:running") is None


def test_wait_answers_as_soon_as_the_run_finishes(listener, quiet_manager):
    run_id = pending_run(quiet_manager)
    timer = threading.Timer(0.5, quiet_manager.cancel, args=(run_id,))
    started = time.monotonic()
    timer.start()
    try:
        status = wait_for_run(listener, run_id, 20)
    finally:
        timer.cancel()
    assert status == "cancelled"
    assert 0.4 < time.monotonic() - started < 5
    assert listener.waiters == 0


def test_wait_answers_at_the_timeout_with_the_current_state(listener, quiet_manager):
    run_id = pending_run(quiet_manager)
    started = time.monotonic()
    assert wait_for_run(listener, run_id, 0.6) == "pending"
    assert 0.6 <= time.monotonic() - started < 3


def test_wait_on_a_finished_or_unknown_run_answers_at_once(listener, quiet_manager):
    run_id = pending_run(quiet_manager)
    quiet_manager.cancel(run_id)
    started = time.monotonic()
    assert wait_for_run(listener, run_id, 20) == "cancelled"
    assert wait_for_run(listener, uuid.uuid4(), 20) is None
    assert time.monotonic() - started < 2


def test_the_number_of_waiters_is_bounded(engine):
    small = Listener(engine, max_waiters=2)
    try:
        first, second = small.subscribe(uuid.uuid4()), small.subscribe(None)
        with pytest.raises(TooManyWaiters):
            small.subscribe(uuid.uuid4())
        first.close()
        first.close()  # twice is harmless, and frees one slot only
        small.subscribe(uuid.uuid4()).close()
        second.close()
        assert small.waiters == 0
    finally:
        small.close()


def test_listener_reconnects_after_its_backend_is_terminated_and_no_end_is_missed(
    listener, quiet_manager, engine
):
    run_id = pending_run(quiet_manager)
    answers: list[str | None] = []
    waiter = threading.Thread(target=lambda: answers.append(wait_for_run(listener, run_id, 30)))
    waiter.start()
    wait_for(listener.connected.is_set, timeout=10, what="the listener to connect")
    first_pid = listener.backend_pid
    with engine.connect() as c:
        c.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
        # the run ends while the listener is (maybe still) away: the RESET after
        # its reconnection makes the waiter re-read instead of sleeping 30 s
        c.execute(
            sa.text("UPDATE workflow_runs SET status = 'cancelled', finished_at = now(), "
                    "updated_at = now() WHERE id = :id"),
            {"id": run_id},
        )
        c.commit()
    wait_for(lambda: listener.connections >= 2 and listener.connected.is_set(), timeout=15,
             what="the listener to reconnect")
    assert listener.backend_pid != first_pid
    waiter.join(10)
    assert answers == ["cancelled"]

    # and it keeps delivering on the new connection
    other = pending_run(quiet_manager)
    threading.Timer(0.3, quiet_manager.cancel, args=(other,)).start()
    started = time.monotonic()
    assert wait_for_run(listener, other, 20) == "cancelled"
    assert time.monotonic() - started < 5


def test_every_subscription_is_told_to_re_read_after_a_reconnection(listener, engine):
    sub = listener.subscribe(None)
    try:
        wait_for(lambda: RESET in sub.get(0.2), timeout=10, what="the first RESET")
        first_pid, connections = listener.backend_pid, listener.connections
        with engine.connect() as c:
            c.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.backend_pid})
        wait_for(lambda: RESET in sub.get(0.2), timeout=15, what="a RESET after reconnecting")
        # the RESET came from a new connection, not a stale one
        assert listener.connections > connections
        assert listener.backend_pid != first_pid
    finally:
        sub.close()
