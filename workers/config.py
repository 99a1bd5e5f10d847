"""Celery settings that do not lose work (STYLE §5), derived from ``Settings``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Beat's own state lives out of the repo root (ignored ``var/``).
STATE_DIR = ROOT / "var"



def hard_limit(timeout: float) -> float:
    """A step's soft limit raises inside it; the hard limit, a little later, kills it."""
    return timeout + min(5.0, max(1.0, timeout * 0.25))


def lease_seconds(timeout: float) -> float:
    """A lease outlives the hard limit, so a live step never looks abandoned."""
    return hard_limit(timeout) + min(5.0, max(1.0, timeout * 0.25))


def max_countdown(settings: Settings) -> float:
    """Longest retry delay sent as a broker countdown; longer ones wait in Postgres.

    A countdown message is held unacked by a worker until it is due; past the
    Redis visibility timeout it would be delivered twice (celery#2599), and
    RabbitMQ closes channels holding a message unacked past 30 minutes.
    """
    return min(settings.celery_visibility_timeout / 2, 900.0)


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.celery_broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": settings.celery_visibility_timeout,
            "socket_connect_timeout": 5,
            "socket_timeout": 30,
        },
        "broker_heartbeat": 10,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 1,
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "result_backend": None,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "enable_utc": True,
        "timezone": "UTC",
        "beat_schedule_filename": str(STATE_DIR / "celerybeat-schedule"),
    }
