"""deliveries: the duplicate-send guard of email and chat steps

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("run_id", UUID(as_uuid=True), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_id", sa.String(255)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("idempotency_key", name="pk_deliveries"),
        # clean-up of old runs takes their delivery records with them
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["workflow_runs.id"],
            name="fk_deliveries_run_id_workflow_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_deliveries_run_id", "deliveries", ["run_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
