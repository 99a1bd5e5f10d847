"""Alembic owns the schema: upgrade to head and back to base on an empty database."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from alembic import command
from tests.conftest import _admin_engine, alembic_config
from tests.support.environment import database_url


def test_upgrade_head_then_downgrade_base_on_an_empty_database():
    name = f"stepwise_mig_{secrets.token_hex(4)}"
    admin = _admin_engine()
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = database_url(name)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "head")
        tables = set(sa.inspect(engine).get_table_names())
        assert {"workflow_runs", "workflow_steps", "users", "alembic_version"} <= tables
        insp = sa.inspect(engine)
        assert insp.get_pk_constraint("workflow_steps")["constrained_columns"] == [
            "run_id", "position"
        ]
        uniques = {u["name"]: u["column_names"] for u in insp.get_unique_constraints("workflow_runs")}
        assert uniques["uq_workflow_runs_idempotency_key"] == ["idempotency_key", "name"]
        with engine.begin() as c:
            try:
                c.execute(sa.text(
                    "INSERT INTO workflow_runs (id, name, status, input) "
                    "VALUES (gen_random_uuid(), 'x', 'bogus', '{}')"
                ))
            except sa.exc.IntegrityError as exc:
                assert "ck_workflow_runs_status" in str(exc)
            else:
                raise AssertionError("a bogus status was accepted")
        command.downgrade(cfg, "base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
