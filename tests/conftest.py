"""Session set-up: a fresh, migrated Postgres database and a private Redis
database for this test session, real services only."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.support import environment as env

pytest_plugins = ["tests.support.fakes.fixtures"]

os.environ.update(env.TEST_ENV)

from app.settings import load_settings, set_settings  # noqa: E402

set_settings(load_settings())


def _admin_engine() -> sa.Engine:
    return sa.create_engine(env.ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config(str(env_root() / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


def env_root():  # type: ignore[no-untyped-def]
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[str]:
    from alembic import command

    admin = _admin_engine()
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{env.DB_NAME}"'))
    if env.VHOST:
        env.create_vhost(env.VHOST)
    command.upgrade(alembic_config(env.DATABASE_URL), "head")
    yield env.DATABASE_URL
    from app.engine.db import dispose_engines
    from app.engine.notify import close_listeners

    close_listeners()
    dispose_engines()
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{env.DB_NAME}" WITH (FORCE)'))
    admin.dispose()
    env.release_redis_db(env.REDIS_DB)
    if env.VHOST:
        env.delete_vhost(env.VHOST)


@pytest.fixture(scope="session")
def engine(database: str) -> sa.Engine:
    from app.engine.db import get_engine

    return get_engine(database)


@pytest.fixture(autouse=True)
def _starts_sent_before_the_next_test() -> Iterator[None]:
    """A start's chain is published by a sender thread (``app.engine.outbox``): a
    test's sends are out before the next test begins, not inside it."""
    yield
    from app.engine.outbox import flush_all

    flush_all(10)


@pytest.fixture(scope="session")
def manager(database: str):  # type: ignore[no-untyped-def]
    from app.runtime import get_manager

    return get_manager()


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Tests that look inside Redis as the broker do not apply to RabbitMQ."""
    if env.BROKER_KIND != "amqp":
        return
    skip = pytest.mark.skip(reason="inspects Redis as the broker; the broker is RabbitMQ")
    for item in items:
        if "redis_broker" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def redis_store():  # type: ignore[no-untyped-def]
    from tests.support.workflows import store

    return store()


@pytest.fixture(scope="module")
def worker(database: str):  # type: ignore[no-untyped-def]
    """A real ``celery -A workers worker`` subprocess for the tests of one module."""
    from tests.support.processes import Worker

    w = Worker(concurrency=4).start()
    yield w
    w.stop()
