"""One SQLAlchemy engine per process.

Celery's prefork pool forks after import; a connection pool must never cross a
fork, so the engine is keyed by pid and rebuilt lazily in each child.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_lock = threading.Lock()
_engines: dict[tuple[int, str], Engine] = {}

# A pooled connection idle for longer than this is pinged before it is handed
# out; one used just now is not. Under load a step's connection comes straight
# back (no ping: one round trip per step saved); after a pause it is checked,
# so a Postgres restart during the pause costs nothing. A restart in the last
# second is met by the callers' own outage handling (a claim is tried again,
# a checkpoint written again on a fresh connection).
PING_AFTER_IDLE = 1.0


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=10,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": "stepwise"},
    )
    sa.event.listen(engine, "checkin", _note_checkin)
    sa.event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    last = record.info.get("checked_in")
    if last is None or time.monotonic() - last < PING_AFTER_IDLE:
        return  # new (just connected) or used a moment ago
    try:
        before = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # no transaction left open by the ping
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            dbapi_connection.autocommit = before
    except Exception as exc:
        # the pool drops this connection and hands out a fresh one
        raise sa.exc.DisconnectionError(f"stale pooled connection: {exc}") from exc


# SQLSTATEs of a connection that failed or was cut: class 08 (connection
# exception) and the operator's interventions (admin/crash shutdown, starting up)
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03")


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or dropped the connection.

    Such an error is the outage's, not the statement's: the same work may
    succeed once the database is back. A statement's own errors (a constraint,
    a timeout, a deadlock) are not included.
    """
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    code = getattr(exc.orig, "pgcode", None)
    # a connection that could not be opened carries no SQLSTATE at all
    return code is None or str(code).startswith(_UNAVAILABLE_STATES)


def get_engine(url: str) -> Engine:
    """The engine for ``url`` in this process (created on first use)."""
    key = (os.getpid(), url)
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                engine = make_engine(url)
                _engines[key] = engine
    return engine


def dispose_engines() -> None:
    """Drop this process's pools (after fork, at shutdown, in tests)."""
    with _lock:
        for (pid, _url), engine in list(_engines.items()):
            if pid == os.getpid():
                engine.dispose()
            else:
                engine.dispose(close=False)
            del _engines[(pid, _url)]
