"""The test session's own Postgres database and Redis database number.

Chosen when ``tests/conftest.py`` is imported — before anything imports
``workers`` — so the Celery app, the manager and every worker subprocess see
the same, fresh, isolated services.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from urllib.parse import urlparse, urlunparse

from tests.support import redis_lock

ADMIN_URL = os.environ.get(
    "STEPWISE_TEST_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE = os.environ.get("STEPWISE_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def database_url(name: str) -> str:
    parts = urlparse(ADMIN_URL)
    return urlunparse(parts._replace(path=f"/{name}"))


def claim_redis_db() -> int:
    return redis_lock.claim_redis_db(REDIS_BASE)


def release_redis_db(number: int) -> None:
    redis_lock.release_redis_db(REDIS_BASE, number)


AMQP_BASE = os.environ.get("STEPWISE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
BROKER_KIND = os.environ.get("STEPWISE_TEST_BROKER", "redis")


def create_vhost(name: str) -> None:
    """A private RabbitMQ virtual host, so no other session's queues are seen."""
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )


def delete_vhost(name: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)


SESSION = secrets.token_hex(4)
DB_NAME = f"stepwise_test_{SESSION}"
DATABASE_URL = database_url(DB_NAME)
REDIS_DB = claim_redis_db()
REDIS_URL = f"{REDIS_BASE}/{REDIS_DB}"
VHOST = f"stepwise_test_{SESSION}" if BROKER_KIND == "amqp" else None
BROKER_URL = f"{AMQP_BASE}/{VHOST}" if VHOST else REDIS_URL

TEST_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "CELERY_BROKER_URL": BROKER_URL,
    "TEST_REDIS_URL": REDIS_URL,
    "WORKFLOW_MODULES": ",".join(
        [
            "app.workflows.signup",
            "app.workflows.signup_digest",
            "examples.orders",
            "tests.support.workflows",
            "tests.support.custom_workflow",
            "tests.support.graph_workflows",
            "app.workflows.onboarding",
        ]
    ),
    "WORKFLOW_STEP_TIMEOUT": "4",
    "WORKFLOW_RETRY_DELAY": "0.2",
    "WORKFLOW_RECOVERY_INTERVAL": "1",
    "WORKFLOW_RECOVERY_GRACE": "1",
    "WORKFLOW_RECOVERY_LIMIT": "2",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "info",
    "ONBOARDING_REMINDER_AFTER": "2",
    "ONBOARDING_VERIFY_TIMEOUT": "4",
    "ONBOARDING_FOLLOWUP_AFTER": "1",
}
