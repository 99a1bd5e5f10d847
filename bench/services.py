"""A scratch Postgres database and a private Redis database number for one benchmark.

The environment must be set before ``workers`` is imported (the Celery app reads
settings at import), so scripts enter ``scratch()`` first and import the engine
and the Celery app inside it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import redis
import sqlalchemy as sa

from tests.support import redis_lock

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "STEPWISE_BENCH_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE = os.environ.get("STEPWISE_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
# the same lock the test sessions take, so a benchmark and a test run never share a db number
WORKFLOW_MODULES = "app.workflows.signup,bench.workflows"


@dataclass(frozen=True)
class Scratch:
    db_name: str
    database_url: str
    redis_url: str
    env: dict[str, str]


def _database_url(name: str) -> str:
    return urlunparse(urlparse(ADMIN_URL)._replace(path=f"/{name}"))


def claim_redis_db() -> int:
    """Take a Redis database number (1-15) that no live test session or benchmark holds."""
    return redis_lock.claim_redis_db(REDIS_BASE)


def admin_engine() -> sa.Engine:
    return sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def migrate(url: str) -> None:
    from alembic.config import Config

    from alembic import command

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


@contextmanager
def scratch(**overrides: str) -> Iterator[Scratch]:
    """Create, migrate, yield, then drop a ``stepwise_bench_<random>`` database."""
    name = f"stepwise_bench_{secrets.token_hex(4)}"
    url = _database_url(name)
    number = claim_redis_db()
    redis_url = f"{REDIS_BASE}/{number}"
    env = {
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": redis_url,
        "WORKFLOW_MODULES": WORKFLOW_MODULES,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        **overrides,
    }
    os.environ.update(env)
    from app.settings import load_settings, set_settings

    set_settings(load_settings())
    admin = admin_engine()
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        migrate(url)
        yield Scratch(name, url, redis_url, env)
    finally:
        from app.engine.db import dispose_engines

        dispose_engines()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        client.close()
