"""a run keeps its own step graph; steps are addressed by name

Each ``workflow_steps`` row now carries what the run needs to go on without
asking the deployed code about order: its predecessors (``after``), its kind
(task, sleep, signal, compensation), when it was last sent (``dispatched_at``,
what the recovery sweep looks for), a wake-up time for sleeps and signal
timeouts, and the history of its attempts. Signals and the registry of live
workers get tables of their own.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD_STEP_STATUSES = "('pending', 'running', 'retrying', 'succeeded', 'failed')"
NEW_STEP_STATUSES = (
    "('pending', 'running', 'retrying', 'succeeded', 'failed', 'waiting', 'skipped', 'compensated')"
)


def upgrade() -> None:
    op.add_column(
        "workflow_steps",
        sa.Column("after", ARRAY(sa.String(200)), nullable=False, server_default="{}"),
    )
    op.add_column(
        "workflow_steps", sa.Column("kind", sa.String(16), nullable=False, server_default="task")
    )
    op.add_column("workflow_steps", sa.Column("signal", sa.String(200)))
    op.add_column("workflow_steps", sa.Column("compensates", sa.String(200)))
    op.add_column("workflow_steps", sa.Column("wake_at", sa.DateTime(timezone=True)))
    op.add_column("workflow_steps", sa.Column("dispatched_at", sa.DateTime(timezone=True)))
    op.add_column(
        "workflow_steps", sa.Column("resends", sa.SmallInteger, nullable=False, server_default="0")
    )
    op.add_column("workflow_steps", sa.Column("waiting_for", sa.Text))
    op.add_column(
        "workflow_steps",
        sa.Column("history", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    # existing rows: a straight line, as round 1 ran them
    op.execute(
        """
        UPDATE workflow_steps s SET after = ARRAY[p.name]
        FROM workflow_steps p WHERE p.run_id = s.run_id AND p.position = s.position - 1
        """
    )
    op.execute(
        """
        UPDATE workflow_steps SET dispatched_at = now()
        WHERE status IN ('pending', 'retrying', 'running')
        """
    )
    op.drop_constraint("ck_workflow_steps_status", "workflow_steps", type_="check")
    op.create_check_constraint(
        "ck_workflow_steps_status", "workflow_steps", f"status IN {NEW_STEP_STATUSES}"
    )
    op.create_unique_constraint("uq_workflow_steps_run_id", "workflow_steps", ["run_id", "name"])
    # what the recovery sweep looks for, each on its own partial index
    op.create_index(
        "ix_workflow_steps_lease", "workflow_steps", ["lease_expires_at"],
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_index(
        "ix_workflow_steps_retry_due", "workflow_steps", ["next_attempt_at"],
        postgresql_where=sa.text("status = 'retrying'"),
    )
    op.create_index(
        "ix_workflow_steps_wake", "workflow_steps", ["wake_at"],
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.create_index(
        "ix_workflow_steps_dispatched", "workflow_steps", ["dispatched_at"],
        postgresql_where=sa.text("status = 'pending' AND dispatched_at IS NOT NULL"),
    )

    op.add_column("workflow_runs", sa.Column("forked_from", JSONB))

    op.create_table(
        "workflow_signals",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("run_id", UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("payload", JSONB),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("consumed_by", sa.String(200)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_signals"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["workflow_runs.id"],
            name="fk_workflow_signals_run_id_workflow_runs", ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "run_id", "name", "idempotency_key", name="uq_workflow_signals_run_id"
        ),
    )
    op.create_index(
        "ix_workflow_signals_unconsumed", "workflow_signals", ["run_id", "name", "id"],
        postgresql_where=sa.text("consumed_by IS NULL"),
    )

    op.create_table(
        "workflow_workers",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("tasks", ARRAY(sa.String(255)), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_workflow_workers"),
    )


def downgrade() -> None:
    op.drop_table("workflow_workers")
    op.drop_table("workflow_signals")
    op.drop_column("workflow_runs", "forked_from")
    for index in ("dispatched", "wake", "retry_due", "lease"):
        op.drop_index(f"ix_workflow_steps_{index}", "workflow_steps")
    op.drop_constraint("uq_workflow_steps_run_id", "workflow_steps", type_="unique")
    op.execute(
        "UPDATE workflow_steps SET status = 'pending' "
        "WHERE status IN ('waiting', 'skipped', 'compensated')"
    )
    op.drop_constraint("ck_workflow_steps_status", "workflow_steps", type_="check")
    op.create_check_constraint(
        "ck_workflow_steps_status", "workflow_steps", f"status IN {OLD_STEP_STATUSES}"
    )
    for column in (
        "history", "waiting_for", "resends", "dispatched_at", "wake_at", "compensates",
        "signal", "kind", "after",
    ):
        op.drop_column("workflow_steps", column)
