"""One SQLAlchemy engine per process.

Celery's prefork pool forks after import; a connection pool must never cross a
fork, so the engine is keyed by pid and rebuilt lazily in each child.
"""

from __future__ import annotations

import os
import threading

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_lock = threading.Lock()
_engines: dict[tuple[int, str], Engine] = {}


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": "stepwise"},
    )


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
