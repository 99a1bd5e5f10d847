"""Processes exactly as the Procfile starts them, on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.ops.conftest import free_port, procfile_command
from tests.support.polling import wait_for
from tests.support.processes import Process


@dataclass
class Web:
    base: str
    process: Process

    def output(self) -> str:
        return self.process.output()


@contextmanager
def procfile_web(env: dict[str, str] | None = None) -> Iterator[Web]:
    """The Procfile's ``web`` line (gunicorn, sync workers, access log) on a free port."""
    port = free_port()
    process = Process(
        ["bash", "-c", f"exec {procfile_command('web')}"],
        env={**(env or {}), "PORT": str(port)},
        name="web",
    ).start()
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not process.alive:
            raise AssertionError(f"web exited:\n{process.output()}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=60, what="the web process to serve /healthz")
        yield Web(base, process)
    finally:
        process.stop()


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict:  # type: ignore[type-arg]
    """The one JSON error shape (DESIGN §5), over real HTTP."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return dict(body["error"])
