"""Stepwise web application (Flask). ``create_app`` is the factory gunicorn runs."""

from __future__ import annotations

from typing import Any

from flask import Flask

from app.settings import Settings, get_settings, set_settings


def create_app(settings: Settings | None = None) -> Flask:
    if settings is not None:
        set_settings(settings)
    settings = get_settings()
    from app.logging_setup import configure_logging
    from app.runtime import get_manager

    configure_logging(settings.log_format, settings.log_level)
    flask_app = Flask(__name__)
    flask_app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    flask_app.extensions["stepwise_manager"] = get_manager()
    from app import cli, metrics  # ops: /metrics and ``flask workflows ...`` (docs/operations.md)

    flask_app.register_blueprint(metrics.blueprint)
    flask_app.cli.add_command(cli.workflows)

    @flask_app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    return flask_app
