"""Stepwise web application (Flask). ``create_app`` is the factory gunicorn runs."""

from __future__ import annotations

import sys
from types import TracebackType

from flask import Flask

from app.settings import ConfigError, Settings, get_settings, set_settings

_default_hook = sys.excepthook


def _one_line_config_errors(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    """``flask --app app ...`` and other entry points: a ConfigError is one line, not a
    traceback; the variable's name is in the message. Anything else is left alone."""
    if isinstance(error, ConfigError):
        print(f"stepwise: configuration error: {error}", file=sys.stderr)
        return
    _default_hook(kind, error, tb)


sys.excepthook = _one_line_config_errors


def create_app(settings: Settings | None = None) -> Flask:
    if settings is not None:
        set_settings(settings)
    settings = get_settings()
    from app import cli, metrics
    from app.api import init_api
    from app.dashboard import dashboard
    from app.logging_setup import configure_logging
    from app.runtime import get_listener, get_manager

    configure_logging(settings.log_format, settings.log_level)
    flask_app = Flask(__name__)
    flask_app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    manager = get_manager()
    flask_app.extensions["stepwise_manager"] = manager
    # one LISTEN connection per process for ?wait= and the live dashboard
    flask_app.extensions["stepwise_listener"] = get_listener()

    # the HTTP API (/api/...), /healthz and /readyz, and the one JSON error shape
    init_api(flask_app, settings, manager.registry)
    # Prometheus /metrics, read from Postgres at scrape time (docs/operations.md)
    flask_app.register_blueprint(metrics.blueprint)
    # the operator's pages (/, /runs/<id>, /workflow-types, /sign-in)
    flask_app.register_blueprint(dashboard)
    # ``flask --app app workflows list|show|retry|cancel|recover``
    flask_app.cli.add_command(cli.workflows)

    return flask_app
