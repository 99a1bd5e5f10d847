"""Fixtures for the HTTP API: the app on the test session's database, a
factory for apps with other settings, and small request helpers."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.engine.errors import IllegalTransition
from app.settings import get_settings, set_settings


@pytest.fixture(scope="package", autouse=True)
def leave_no_active_run(database: str) -> Iterator[None]:
    """Cancel what these tests left pending (some were never sent, by design),
    so a later test's recovery sweep does not find our runs."""
    yield
    from app.runtime import get_manager

    manager = get_manager()
    with manager.engine.connect() as c:
        active = c.execute(
            sa.text("SELECT id FROM workflow_runs WHERE status IN ('pending', 'running')")
        ).scalars()
        ids = list(active)
    for run_id in ids:
        with contextlib.suppress(IllegalTransition):  # it finished meanwhile
            manager.cancel(run_id)


@pytest.fixture(scope="session")
def app(database: str) -> Flask:
    return create_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_app(database: str) -> Iterator[Callable[..., Flask]]:
    """Build an app with some settings changed; the session's settings come back after."""
    original = get_settings()

    def build(**changes: Any) -> Flask:
        return create_app(original.override(**changes))

    yield build
    set_settings(original)


def closed_port() -> int:
    """A local port nobody listens on (connections to it are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_email() -> str:
    return f"api-{uuid.uuid4().hex[:10]}@example.com"


def signup_input(**changes: Any) -> dict[str, Any]:
    return {"email": unique_email(), "name": "Ada Lovelace", "plan": "free", **changes}


def start(client: FlaskClient, name: str, payload: Any, *, key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(f"/api/v1/workflows/{name}", json={"input": payload}, headers=headers)


# the JSON fields of DESIGN §5 and the additions of §10: a run, and each of its steps
RUN_KEYS = {
    "id",
    "name",
    "status",
    "input",
    "output",
    "error",
    "idempotency_key",
    "recovery_count",
    "forked_from",
    "definition_version",
    "created_at",
    "started_at",
    "finished_at",
    "steps",
}
STEP_KEYS = {
    "name",
    "position",
    "status",
    "attempts",
    "output",
    "error",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "after",
    "kind",
    "signal",
    "wake_at",
    "waiting_for",
    "history",
}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The one error shape, as JSON, with this status and code."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return dict(body["error"])
