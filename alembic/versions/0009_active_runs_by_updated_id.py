"""active runs indexed by (updated_at, id): the sweep's stranded-run slices resume
where the last one stopped through the index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

The sweep examines active runs older than the grace period one slice at a
time, ordered by ``(updated_at, id)`` and resuming after the last row it saw.
With ``updated_at`` alone in the index, Postgres sorted every active run to
find each slice, so the check's cost grew with healthy runs (8,232 buffers at
100k active runs). This index replaces ``ix_workflow_runs_active_updated``
(same predicate, one more column, so it serves everything the old one did).
Built ``CONCURRENTLY`` like 0006: no start or checkpoint waits for the build.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('pending', 'running')")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("SET statement_timeout = 0")
        op.create_index(
            "ix_workflow_runs_active_updated_id", "workflow_runs", ["updated_at", "id"],
            postgresql_where=ACTIVE, postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_workflow_runs_active_updated", table_name="workflow_runs",
            postgresql_concurrently=True,
        )
        op.execute("RESET statement_timeout")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_workflow_runs_active_updated", "workflow_runs", ["updated_at"],
            postgresql_where=ACTIVE, postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_workflow_runs_active_updated_id", table_name="workflow_runs",
            postgresql_concurrently=True,
        )
