"""Migration 0002 creates and drops the deliveries table cleanly."""

from __future__ import annotations

import sqlalchemy as sa

from alembic import command
from tests.conftest import alembic_config


def test_deliveries_migration_downgrades_and_upgrades_again(database, engine):
    config = alembic_config(database)
    command.downgrade(config, "0001")
    assert not sa.inspect(engine).has_table("deliveries")
    command.upgrade(config, "head")
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("deliveries")["constrained_columns"] == ["idempotency_key"]
    [fk] = inspector.get_foreign_keys("deliveries")
    assert fk["referred_table"] == "workflow_runs" and fk["options"]["ondelete"] == "CASCADE"
