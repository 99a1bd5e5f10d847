"""Run notifications: one ``LISTEN`` connection per process, waking waiters per run.

Migration 0007 makes Postgres ``NOTIFY`` channel ``stepwise_runs`` with
``<run id>:<status>`` whenever a run's status or ``updated_at`` changes, from
whatever code path changed it. A ``Listener`` holds one dedicated psycopg2
connection (outside the SQLAlchemy pool, so it never takes a pooled slot) and
a background thread that hands each notice to the subscriptions of that run
and to the subscriptions of every run (the dashboard's list).

Guarantees a waiter can build on:

* a notice committed after ``subscribe`` returned is delivered, or replaced by
  a ``RESET`` notice that means "you may have missed something: re-read";
* ``RESET`` is sent to every subscription after each (re)connection, so a
  subscription made while the connection was down, or a notice sent while it
  was, is never lost for good — a waiter re-reads and sees the end;
* the number of subscriptions per process is bounded (``TooManyWaiters``),
  because each one usually parks a web thread.

So a waiter subscribes *first* and reads the run's state *second*: whatever
happens after the read arrives as a notice (no lost-wakeup race).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.engine.errors import StepwiseError

log = logging.getLogger(__name__)

CHANNEL = "stepwise_runs"
DEFAULT_MAX_WAITERS = 1000
HEALTH_CHECK_SECONDS = 30.0
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
SUBSCRIPTION_CAPACITY = 256


class TooManyWaiters(StepwiseError):
    """This process already holds as many waiters as it is allowed to."""

    code = "too_many_waiters"


@dataclass(frozen=True)
class Notice:
    """One change of one run; ``run_id=None`` is ``RESET``: re-read everything."""

    run_id: uuid.UUID | None
    status: str | None = None


RESET = Notice(None)


def parse_payload(payload: str) -> Notice | None:
    """``"<uuid>:<status>"`` → ``Notice``; anything else is ignored (``None``)."""
    raw_id, sep, status = payload.partition(":")
    if not sep:
        return None
    try:
        return Notice(uuid.UUID(raw_id), status or None)
    except ValueError:
        return None


class Subscription:
    """The notices of one run (or of all runs) since the last ``get``.

    Bounded: past ``capacity`` pending notices they are dropped for one
    ``RESET``, which tells the reader to re-read rather than replay.
    """

    def __init__(self, listener: Listener, run_id: uuid.UUID | None, capacity: int) -> None:
        self.listener = listener
        self.run_id = run_id
        self._capacity = capacity
        self._pending: deque[Notice] = deque()
        self._ready = threading.Condition()
        self.closed = False

    def put(self, notice: Notice) -> None:
        with self._ready:
            if len(self._pending) >= self._capacity:
                self._pending.clear()
                notice = RESET
            if notice is RESET and RESET in self._pending:
                return
            self._pending.append(notice)
            self._ready.notify_all()

    def get(self, timeout: float) -> list[Notice]:
        """Pending notices, waiting up to ``timeout`` seconds for one; [] on timeout."""
        with self._ready:
            if not self._pending and timeout > 0:
                self._ready.wait(timeout)
            notices = list(self._pending)
            self._pending.clear()
            return notices

    def close(self) -> None:
        self.listener.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Listener:
    """One ``LISTEN`` connection and its thread, started on the first subscription."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_waiters: int = DEFAULT_MAX_WAITERS,
        channel: str = CHANNEL,
    ) -> None:
        self.engine = engine
        self.max_waiters = max_waiters
        self.channel = channel
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._lock = threading.Lock()
        self._by_run: dict[uuid.UUID | None, set[Subscription]] = {}
        self._count = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.backend_pid: int | None = None
        self.connections = 0  # how many times LISTEN was (re)established

    # -- subscriptions -------------------------------------------------------

    def subscribe(self, run_id: uuid.UUID | None = None) -> Subscription:
        """Notices of ``run_id`` (or of every run); ``TooManyWaiters`` past the bound."""
        with self._lock:
            if self._count >= self.max_waiters:
                raise TooManyWaiters(
                    f"this process already holds {self.max_waiters} waiters",
                    details={"max_waiters": self.max_waiters},
                )
            sub = Subscription(self, run_id, SUBSCRIPTION_CAPACITY)
            self._by_run.setdefault(run_id, set()).add(sub)
            self._count += 1
        self._ensure_started()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub.closed:
                return
            sub.closed = True
            group = self._by_run.get(sub.run_id)
            if group is not None:
                group.discard(sub)
                if not group:
                    del self._by_run[sub.run_id]
            self._count -= 1

    @property
    def waiters(self) -> int:
        return self._count

    def _deliver(self, notice: Notice) -> None:
        with self._lock:
            if notice.run_id is None:
                targets = [s for group in self._by_run.values() for s in group]
            else:
                targets = [*self._by_run.get(notice.run_id, ()), *self._by_run.get(None, ())]
        for sub in targets:
            sub.put(notice)

    # -- the connection --------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="stepwise-listener", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Stop the thread and close the connection (tests, shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _connect(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(
            self._dsn,
            connect_timeout=5,
            application_name="stepwise-listener",
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {self.channel}")
        return conn

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            conn = None
            try:
                conn = self._connect()
                self.backend_pid = conn.get_backend_pid()
                self.connections += 1
                self.connected.set()
                failures = 0
                # whatever was sent before LISTEN took effect is unknown: re-read
                self._deliver(RESET)
                self._pump(conn)
            except (psycopg2.Error, OSError) as exc:
                self.connected.clear()
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                log.warning("run listener lost its connection (%s); retry in %.1fs", exc, delay)
                self._stop.wait(delay)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(psycopg2.Error):
                        conn.close()

    def _pump(self, conn: psycopg2.extensions.connection) -> None:
        """Hand notices out until the connection fails or ``close`` is called."""
        checked = time.monotonic()
        while not self._stop.is_set():
            readable, _, _ = select.select([conn], [], [], 1.0)
            if readable:
                conn.poll()  # raises when the server closed the connection
                while conn.notifies:
                    notice = parse_payload(conn.notifies.pop(0).payload)
                    if notice is not None:
                        self._deliver(notice)
            elif time.monotonic() - checked > HEALTH_CHECK_SECONDS:
                with conn.cursor() as cur:  # a silent half-open socket shows up here
                    cur.execute("SELECT 1")
                checked = time.monotonic()


_lock = threading.Lock()
_listeners: dict[tuple[int, str], Listener] = {}


def get_listener(engine: Engine, *, max_waiters: int | None = None) -> Listener:
    """This process's listener for ``engine``'s database (one per pid and URL)."""
    key = (os.getpid(), engine.url.render_as_string(hide_password=False))
    with _lock:
        listener = _listeners.get(key)
        if listener is None:
            listener = Listener(engine)
            _listeners[key] = listener
        if max_waiters is not None:
            listener.max_waiters = max_waiters
    return listener


def close_listeners() -> None:
    """Stop this process's listeners (shutdown, and tests before they drop their database)."""
    with _lock:
        found = list(_listeners.values())
        _listeners.clear()
    for listener in found:
        listener.close()


# -- waiting for a run -----------------------------------------------------------

FINISHED = frozenset({"succeeded", "failed", "cancelled"})

_STATUS = sa.text("SELECT status FROM workflow_runs WHERE id = :id").bindparams(
    sa.bindparam("id", type_=sa.Uuid)
)


def read_status(engine: Engine, run_id: uuid.UUID) -> str | None:
    with engine.connect() as conn:
        status = conn.execute(_STATUS, {"id": run_id}).scalar()
    return None if status is None else str(status)


def wait_for_run(source: Engine | Listener, run_id: uuid.UUID, timeout: float) -> str | None:
    """Block until run ``run_id`` is finished or ``timeout`` seconds pass.

    Returns the last status read (``None`` if there is no such run); the
    caller reads the whole run afterwards. Subscribes before the first read,
    and re-reads only when a notice says the run finished or a ``RESET`` says
    a notice may be lost, so a waiter costs one query plus one per end.
    ``TooManyWaiters`` when this process holds its maximum already.
    """
    listener = source if isinstance(source, Listener) else get_listener(source)
    deadline = time.monotonic() + max(timeout, 0.0)
    with listener.subscribe(run_id) as sub:
        status = read_status(listener.engine, run_id)
        while status is not None and status not in FINISHED:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            notices = sub.get(left)
            if any(n is RESET or n.status in FINISHED for n in notices):
                status = read_status(listener.engine, run_id)
    return status

