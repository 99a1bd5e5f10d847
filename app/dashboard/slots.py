"""A bound on open event streams per process (each one parks a web thread)."""

from __future__ import annotations

import threading


class StreamSlots:
    """A non-blocking counter: at most ``limit`` streams open at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._open -= 1

    @property
    def open(self) -> int:
        return self._open
