"""designed workflows: stored, versioned definitions, and the version each run keeps (DESIGN §14)

``workflow_definitions`` holds every saved version of a designed workflow
(never updated, never deleted: a run in flight may still need its version).
``workflow_runs.definition_version`` is the version a designed run started
with; it is null for code-defined workflows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_definitions",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("input_schema", JSONB, nullable=False),
        sa.Column("steps", JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("name", "version", name="pk_workflow_definitions"),
        sa.CheckConstraint("version >= 1", name="ck_workflow_definitions_version"),
    )
    op.add_column("workflow_runs", sa.Column("definition_version", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("workflow_runs", "definition_version")
    op.drop_table("workflow_definitions")
