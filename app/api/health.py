"""Liveness and readiness probes; open even when ``API_TOKEN`` is set.

``/healthz`` says the process serves requests. ``/readyz`` checks what a
request needs — the database (``SELECT 1``) and the broker (a short
connection) — and answers 503 naming whichever is down.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from kombu import Connection

from app.api.errors import render
from app.api.schemas import ErrorSchema, HealthSchema, ReadinessSchema

BROKER_TIMEOUT = 2.0
DATABASE_TIMEOUT_MS = 2000

log = structlog.get_logger("stepwise.health")

blp = Blueprint("health", __name__, description="Liveness and readiness probes (no token needed)")


def check_database() -> None:
    engine = current_app.extensions["stepwise_manager"].engine
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {DATABASE_TIMEOUT_MS}")
        conn.execute(sa.text("SELECT 1")).scalar_one()
        conn.rollback()


def check_broker() -> None:
    url = current_app.config["STEPWISE_BROKER_URL"]
    options = {
        "socket_connect_timeout": BROKER_TIMEOUT,
        "socket_timeout": BROKER_TIMEOUT,
        "max_retries": 0,
    }
    with Connection(url, connect_timeout=BROKER_TIMEOUT, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT)
        if conn.transport.driver_type == "redis":
            conn.default_channel.client.ping()


CHECKS = {"database": check_database, "broker": check_broker}


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.doc(security=[])
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.doc(security=[])
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, schema=ErrorSchema, description="a dependency is down (named)")
    def get(self) -> Any:
        """The database and the broker are reachable."""
        results: dict[str, str] = {}
        for name, check in CHECKS.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:  # any failure means "not ready"; the detail goes to the log
                log.warning("readiness check failed", dependency=name, error=repr(exc)[:300])
                results[name] = f"down: {type(exc).__name__}"
        down = sorted(name for name, result in results.items() if result != "ok")
        if down:
            return render(503, "not_ready", f"not ready: {', '.join(down)} unreachable", results)
        return {"status": "ready", "checks": results}
