"""indexes for the operator's console: search by input, filter by error type,
count per status within a workflow

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

The run-id prefix search needs no index of its own: a hex prefix is a range
of the primary key (``app.engine.queries``). The idempotency-key search uses
the unique (idempotency_key, name) index of 0001.

The indexes are built ``CONCURRENTLY`` (outside the migration's transaction,
without a statement timeout): on a deployment with millions of runs the
build takes a while, and a plain ``CREATE INDEX`` would block every start,
checkpoint and transition for that long.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("SET statement_timeout = 0")
        _create_indexes()
        op.execute("RESET statement_timeout")


def _create_indexes() -> None:
    # input @> '{"email": "..."}': jsonb_path_ops is smaller than the default
    # jsonb_ops and serves exactly the containment operator we use
    op.create_index(
        "ix_workflow_runs_input",
        "workflow_runs",
        ["input"],
        postgresql_using="gin",
        postgresql_ops={"input": "jsonb_path_ops"},
        postgresql_concurrently=True,
    )
    # error->>'type', newest first; partial: only runs that carry an error
    op.create_index(
        "ix_workflow_runs_error_type_created",
        "workflow_runs",
        [sa.text("(error ->> 'type')"), sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_where=sa.text("error IS NOT NULL"),
        postgresql_concurrently=True,
    )
    # per-status counts and lists within one workflow (the dashboard's tabs)
    op.create_index(
        "ix_workflow_runs_name_status_created",
        "workflow_runs",
        ["name", "status", sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_concurrently=True,
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_runs_name_status_created", table_name="workflow_runs")
    op.drop_index("ix_workflow_runs_error_type_created", table_name="workflow_runs")
    op.drop_index("ix_workflow_runs_input", table_name="workflow_runs")
