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

import redis

ADMIN_URL = os.environ.get(
    "STEPWISE_TEST_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE = os.environ.get("STEPWISE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
LOCK_KEY = "stepwise:test-session-lock"
LOCK_TTL = 3 * 3600


def database_url(name: str) -> str:
    parts = urlparse(ADMIN_URL)
    return urlunparse(parts._replace(path=f"/{name}"))


def _holder_alive(value: bytes | None) -> bool:
    """A lock whose holder process is gone (a killed test run) is free again."""
    if value is None:
        return False
    try:
        pid = int(value.decode().split(":", 1)[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def claim_redis_db() -> int:
    """Take a Redis database number no other live test session holds."""
    token = f"{os.getpid()}:{secrets.token_hex(4)}"
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_BASE}/{number}")
        taken = client.set(LOCK_KEY, token, nx=True, ex=LOCK_TTL)
        if not taken and not _holder_alive(client.get(LOCK_KEY)):
            client.set(LOCK_KEY, token, ex=LOCK_TTL)
            taken = client.get(LOCK_KEY) == token.encode()
        if taken:
            # whatever an earlier crashed session left is stale
            for key in client.scan_iter(count=1000):
                if key != LOCK_KEY.encode():
                    client.delete(key)
            client.close()
            return number
        client.close()
    raise RuntimeError("no free Redis database (1-15) for this test session")


def release_redis_db(number: int) -> None:
    client = redis.Redis.from_url(f"{REDIS_BASE}/{number}")
    client.flushdb()
    client.close()


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
        ]
    ),
    "WORKFLOW_STEP_TIMEOUT": "4",
    "WORKFLOW_RETRY_DELAY": "0.2",
    "WORKFLOW_RECOVERY_INTERVAL": "1",
    "WORKFLOW_RECOVERY_GRACE": "1",
    "WORKFLOW_RECOVERY_LIMIT": "2",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "info",
}
