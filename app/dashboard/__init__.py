"""The operator's dashboard: server-rendered pages over ``WorkflowManager``.

Register with ``flask_app.register_blueprint(dashboard)``. Views read and act
through the manager in ``flask_app.extensions["stepwise_manager"]`` and never
import Celery tasks; what they need from settings is captured once, at
registration, in ``flask_app.extensions["stepwise_dashboard"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, Flask
from flask.sansio.blueprints import BlueprintSetupState

from app.dashboard import auth, formatting
from app.dashboard.counts import StatusCounter
from app.dashboard.slots import StreamSlots
from app.settings import get_settings


@dataclass(frozen=True)
class DashboardConfig:
    api_token: str | None
    flower_url: str
    counter: StatusCounter
    # live pages (app/dashboard/live.py): open event streams, and how long each lasts
    streams: StreamSlots = field(default_factory=lambda: StreamSlots(8))
    stream_seconds: float = 30.0


dashboard = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/dashboard/static",
)


@dashboard.record_once
def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    assert isinstance(app, Flask)
    settings = get_settings()
    auth.configure_session(app, settings)
    # lets a signed-in browser read /api/docs and /api/openapi.json (app.api.auth)
    app.extensions["stepwise_session_signed_in"] = auth.signed_in
    manager = app.extensions["stepwise_manager"]
    app.extensions["stepwise_dashboard"] = DashboardConfig(
        api_token=settings.api_token or None,
        flower_url=settings.flower_url or f"http://127.0.0.1:{settings.flower_port}",
        counter=StatusCounter(manager.engine),
        streams=StreamSlots(settings.dashboard_max_streams),
        stream_seconds=settings.dashboard_stream_seconds,
    )


for _filter in (formatting.format_time, formatting.format_duration, formatting.pretty_json):
    dashboard.add_app_template_filter(_filter)
dashboard.before_request(auth.guard)

from app.dashboard import designer, live, views  # noqa: E402,F401  (routes attach to the blueprint)

__all__ = ["DashboardConfig", "dashboard"]
