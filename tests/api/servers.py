"""Real HTTP servers for the API tests: the app in a thread, or gunicorn as the Procfile runs it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from flask import Flask
from werkzeug.serving import make_server

from tests.api.conftest import closed_port
from tests.support.polling import wait_for
from tests.support.processes import VENV_BIN, Process


@contextmanager
def serve_in_thread(app: Flask) -> Iterator[str]:
    """A threaded werkzeug server on a free loopback port (bound to port 0)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[str]:
    """``gunicorn "app:create_app()"`` as in the Procfile, on a free port."""
    port = closed_port()
    process = Process(
        [
            str(VENV_BIN / "gunicorn"),
            "app:create_app()",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--timeout",
            "30",
        ],
        env=env,
        name="gunicorn",
    ).start()
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not process.alive:
            raise AssertionError(f"gunicorn exited:\n{process.output()}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=30, what="gunicorn to serve /healthz")
        yield base
    finally:
        process.stop()
