"""workflow_runs, workflow_steps and the signup example's users

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflow_runs",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", JSONB, nullable=False),
        sa.Column("output", JSONB),
        sa.Column("error", JSONB),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("recovery_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_runs"),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_workflow_runs_status",
        ),
        sa.UniqueConstraint("idempotency_key", "name", name="uq_workflow_runs_idempotency_key"),
    )
    op.create_index(
        "ix_workflow_runs_created",
        "workflow_runs",
        [sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_workflow_runs_status_created",
        "workflow_runs",
        ["status", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_workflow_runs_name_created",
        "workflow_runs",
        ["name", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    # the recovery sweep: active runs that have not moved for a while
    op.create_index(
        "ix_workflow_runs_active_updated",
        "workflow_runs",
        ["updated_at"],
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    # the clean-up job: finished runs past the retention
    op.create_index(
        "ix_workflow_runs_finished",
        "workflow_runs",
        ["finished_at"],
        postgresql_where=sa.text("status IN ('succeeded', 'failed', 'cancelled')"),
    )

    op.create_table(
        "workflow_steps",
        sa.Column("run_id", UUID(as_uuid=True), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output", JSONB),
        sa.Column("error", JSONB),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("next_attempt_at", TS),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", TS),
        # the primary key is the contract's unique (run_id, position)
        sa.PrimaryKeyConstraint("run_id", "position", name="pk_workflow_steps"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["workflow_runs.id"],
            name="fk_workflow_steps_run_id_workflow_runs",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'retrying', 'succeeded', 'failed')",
            name="ck_workflow_steps_status",
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_workflow_steps_attempts"),
    )

    op.create_table(
        "users",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("plan", sa.String(16), nullable=False),
        sa.Column("run_id", UUID(as_uuid=True)),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.CheckConstraint("plan IN ('free', 'pro')", name="ck_users_plan"),
    )


def downgrade() -> None:
    op.drop_table("users")
    op.drop_table("workflow_steps")
    op.drop_table("workflow_runs")
