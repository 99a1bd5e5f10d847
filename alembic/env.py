"""Alembic environment: same settings as the app, one migrator at a time.

An advisory lock serialises concurrent ``alembic upgrade`` runs (two release
phases racing); ``lock_timeout`` keeps a migration from queueing behind a long
transaction and blocking every query that queues behind it.
"""

from __future__ import annotations

from logging.config import fileConfig

import sqlalchemy as sa

from alembic import context
from app.engine.models import metadata
from app.settings import get_settings

MIGRATION_LOCK_ID = 0x5173_7077  # arbitrary, constant: "stepwise migrations"

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

url = config.attributes.get("database_url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        connection.execute(sa.text("SET lock_timeout = '5s'"))
        connection.execute(sa.text("SET statement_timeout = '60s'"))
        connection.execute(sa.select(sa.func.pg_advisory_lock(MIGRATION_LOCK_ID)))
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(sa.select(sa.func.pg_advisory_unlock(MIGRATION_LOCK_ID)))
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
