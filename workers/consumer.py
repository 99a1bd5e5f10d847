"""The worker's consumer, with task events sent in batches (``worker_consumer``).

With ``-E`` (the Procfile's, for Flower) a worker sends three task events per
step: received, started, succeeded. Celery buffers them, but flushes the
buffer on the very next turn of its event loop, so under load nearly every
event is a publish of its own: a JSON message and a synchronous round trip to
the broker in the worker's main process, the one process that also receives
every message and feeds the pool. Profiled under load, that flushing was the
largest single cost of the main process (13 % of the whole worker's CPU).

Here the buffer is flushed at most every ``EVENT_FLUSH_INTERVAL`` seconds
(or sooner when Celery's own limit of buffered events is reached), as one
``task.multi`` message, which Flower and ``celery events`` read like any
other. Each event keeps the timestamp of the moment it happened; a monitor
sees it up to that interval later. Worker heartbeats are not buffered.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from vine import promise

# seconds a task event may wait in the buffer before it is published
EVENT_FLUSH_INTERVAL = 0.1


class Consumer(CeleryConsumer):  # type: ignore[misc]
    _flush_due: float | None = None  # when the armed flush should have run

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arm_flush_promise = promise(self._arm_flush)

    def on_send_event_buffered(self) -> None:
        # called for every buffered event; only the first since the last flush
        # schedules one (call_soon is safe from a pool thread; the timer is armed
        # on the loop's own thread). A flush overdue by a second (its timer lost
        # with a connection reset) is armed again.
        if self.hub is None:
            return
        due = self._flush_due
        now = monotonic()
        if due is None or now > due + 1.0:
            self._flush_due = now + EVENT_FLUSH_INTERVAL
            self.hub.call_soon(self._arm_flush_promise)

    def _arm_flush(self) -> None:
        self.hub.call_later(EVENT_FLUSH_INTERVAL, self._flush_buffered_events)

    def _flush_buffered_events(self) -> None:
        self._flush_due = None
        self._flush_events()
