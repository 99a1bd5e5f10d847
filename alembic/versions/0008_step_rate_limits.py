"""workflow_step_rates: the next start a rate-limited step may make;
workflow_sweeps: when the recovery sweep last ran

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02

One row per rate-limited step task (``<workflow>.<step>``), holding the
earliest time its next attempt may start. An admission moves it forward by
1/rate under the row's lock, inside the claim's transaction, so starts of
that step are spaced at least 1/rate seconds apart across every worker.
Steps without a rate limit never touch the table.

``workflow_sweeps`` holds one row per periodic job (today ``recovery``): when
its last run ended, how long it took and what it did, so ``/metrics`` can say
how old the last sweep is — an alert on it catches a beat that stopped or
sweeps that expire unread behind a backlog.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_step_rates",
        sa.Column("task", sa.String(255), primary_key=True),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "workflow_sweeps",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("resent", sa.Integer, nullable=False),
        sa.Column("dead_lettered", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workflow_sweeps")
    op.drop_table("workflow_step_rates")
