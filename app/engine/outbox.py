"""A new run's first messages, sent by a thread of this process after its commit.

``WorkflowManager.start`` returns once the run is durable; its chain is handed
here and published a moment later by one sender thread per process. So a
start costs its one round trip to Postgres and not that plus the publish
(measured here: record 1.25 ms, publish 0.8 ms), and a client starting runs
one after another has its publishes overlap its next inserts.

Nothing is weakened: the start statement marks the roots sent, and a send that
never happens — the process dies first, the broker is down — is what the
recovery sweep already covers (it re-sends them after the grace period, as
for any lost message). At exit, what is still queued is sent (bounded wait).
A full queue (a broker much slower than Postgres) makes ``put`` send inline,
so memory stays bounded and the caller feels the back-pressure.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CAPACITY = 10_000
EXIT_WAIT_SECONDS = 5.0


_outboxes: weakref.WeakSet[Outbox] = weakref.WeakSet()


def flush_all(timeout: float = EXIT_WAIT_SECONDS) -> bool:
    """Wait until every outbox of this process has sent what it holds (at exit, in tests)."""
    deadline = time.monotonic() + timeout
    return all([box.flush(max(0.0, deadline - time.monotonic())) for box in list(_outboxes)])


class Outbox:
    def __init__(self, send: Callable[..., Any], capacity: int = CAPACITY) -> None:
        self._send = send
        self._capacity = capacity
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue(capacity)
        _outboxes.add(self)

    def put(self, *item: Any) -> None:
        """Send ``self._send(*item)`` soon, from the sender thread."""
        try:
            self._current().put_nowait(item)
        except queue.Full:
            self._send(*item)

    def flush(self, timeout: float = EXIT_WAIT_SECONDS) -> bool:
        """Wait until everything put so far is sent; False if ``timeout`` ran out first."""
        if self._pid != os.getpid():
            return True  # nothing was put in this process
        q = self._queue
        deadline = time.monotonic() + timeout
        with q.all_tasks_done:
            while q.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                q.all_tasks_done.wait(left)
        return True

    def _current(self) -> queue.Queue[tuple[Any, ...]]:
        # one queue and thread per process: neither survives a fork
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._queue = queue.Queue(self._capacity)
                    threading.Thread(
                        target=self._run, args=(self._queue,), name="stepwise-outbox", daemon=True
                    ).start()
                    self._pid = os.getpid()
        return self._queue

    def _run(self, q: queue.Queue[tuple[Any, ...]]) -> None:
        while True:
            item = q.get()
            try:
                self._send(*item)
            except Exception:  # the sweep sends it later; the thread must live on
                log.exception("could not send %r; the recovery sweep will", item[:2])
            finally:
                q.task_done()


atexit.register(flush_all)
