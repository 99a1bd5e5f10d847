"""Tables. Alembic owns the schema (``alembic/versions``); these mappings must match it.

A naming convention keeps constraint names stable across migrations. Statuses
are stored by value as short strings with CHECK constraints, so ``psql`` shows
the same words the API does.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.engine.states import RunStatus, StepStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _status_check(enum: type[RunStatus] | type[StepStatus]) -> str:
    values = ", ".join(f"'{member.value}'" for member in enum)
    return f"status IN ({values})"


class Base(DeclarativeBase):
    metadata = metadata


class WorkflowRun(Base):
    __tablename__ = "workflow_runs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(16))
    input: Mapped[dict[str, Any]] = mapped_column(JSONB)
    output: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(255))
    request_hash: Mapped[str | None] = mapped_column(sa.String(64))
    recovery_count: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    forked_from: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # a designed workflow's version (migration 0010); null for code-defined workflows
    definition_version: Mapped[int | None] = mapped_column(sa.Integer)

    __table_args__ = (
        sa.CheckConstraint(_status_check(RunStatus), name="status"),
        sa.UniqueConstraint("idempotency_key", "name", name="uq_workflow_runs_idempotency_key"),
        sa.Index("ix_workflow_runs_created", sa.text("created_at DESC"), sa.text("id DESC")),
        sa.Index(
            "ix_workflow_runs_status_created", "status", sa.text("created_at DESC"), sa.text("id DESC")
        ),
        sa.Index(
            "ix_workflow_runs_name_created", "name", sa.text("created_at DESC"), sa.text("id DESC")
        ),
        sa.Index(
            "ix_workflow_runs_active_updated_id",
            "updated_at",
            "id",
            postgresql_where=sa.text("status IN ('pending', 'running')"),
        ),
        sa.Index(
            "ix_workflow_runs_finished",
            "finished_at",
            postgresql_where=sa.text("status IN ('succeeded', 'failed', 'cancelled')"),
        ),
        # search (migration 0006)
        sa.Index(
            "ix_workflow_runs_input", "input",
            postgresql_using="gin", postgresql_ops={"input": "jsonb_path_ops"},
        ),
        sa.Index(
            "ix_workflow_runs_error_type_created",
            sa.text("(error ->> 'type')"), sa.text("created_at DESC"), sa.text("id DESC"),
            postgresql_where=sa.text("error IS NOT NULL"),
        ),
        sa.Index(
            "ix_workflow_runs_name_status_created",
            "name", "status", sa.text("created_at DESC"), sa.text("id DESC"),
        ),
    )


class WorkflowStep(Base):
    __tablename__ = "workflow_steps"

    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        sa.ForeignKey("workflow_runs.id", ondelete="CASCADE"),
        primary_key=True,
    )
    position: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    output: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # the last holder stays recorded after a checkpoint, so a checkpoint whose
    # commit reply was lost can recognise its own success when it is re-sent
    lease_owner: Mapped[str | None] = mapped_column(sa.String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # the run's own graph: names of the steps this one waits for
    after: Mapped[list[str]] = mapped_column(ARRAY(sa.String(200)), server_default="{}")
    kind: Mapped[str] = mapped_column(sa.String(16), server_default="task")
    signal: Mapped[str | None] = mapped_column(sa.String(200))
    compensates: Mapped[str | None] = mapped_column(sa.String(200))
    wake_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # when its message was last sent: a pending step sent long ago lost its message
    dispatched_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    resends: Mapped[int] = mapped_column(sa.SmallInteger, server_default="0")
    waiting_for: Mapped[str | None] = mapped_column(sa.Text)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")

    __table_args__ = (
        sa.CheckConstraint(_status_check(StepStatus), name="status"),
        sa.CheckConstraint("attempts >= 0", name="attempts"),
        sa.UniqueConstraint("run_id", "name", name="uq_workflow_steps_run_id"),
    )


class WorkflowSignal(Base):
    """A signal delivered to a run; kept until a waiting step consumes it."""

    __tablename__ = "workflow_signals"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("workflow_runs.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    payload: Mapped[Any | None] = mapped_column(JSONB)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(255))
    consumed_by: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )

    __table_args__ = (
        sa.UniqueConstraint("run_id", "name", "idempotency_key", name="uq_workflow_signals_run_id"),
    )


class WorkflowWorker(Base):
    """A live worker and the step tasks it registered (heartbeat in ``seen_at``)."""

    __tablename__ = "workflow_workers"

    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    tasks: Mapped[list[str]] = mapped_column(ARRAY(sa.String(255)))
    seen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class WorkflowStepRate(Base):
    """When a rate-limited step task may next start (``app.engine.admission``)."""

    __tablename__ = "workflow_step_rates"

    task: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    next_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class WorkflowSweep(Base):
    """When a periodic job (the recovery sweep) last ended, for ``/metrics``."""

    __tablename__ = "workflow_sweeps"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    finished_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    seconds: Mapped[float] = mapped_column(sa.Float)
    resent: Mapped[int] = mapped_column(sa.Integer)
    dead_lettered: Mapped[int] = mapped_column(sa.Integer)


class User(Base):
    """Domain table of the ``signup`` example workflow."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    plan: Mapped[str] = mapped_column(sa.String(16))
    run_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )

    __table_args__ = (sa.CheckConstraint("plan IN ('free', 'pro')", name="plan"),)


runs = cast(sa.Table, WorkflowRun.__table__)
steps = cast(sa.Table, WorkflowStep.__table__)
users = cast(sa.Table, User.__table__)
signals = cast(sa.Table, WorkflowSignal.__table__)
workers = cast(sa.Table, WorkflowWorker.__table__)


class Delivery(Base):
    """One accepted side effect (an email, a chat post), keyed by the step's idempotency key.

    Written right after the provider accepts, so a redelivered step finds it and
    does not send again (``app.integrations.deliveries``).
    """

    __tablename__ = "deliveries"

    idempotency_key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("workflow_runs.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(sa.String(32))
    provider: Mapped[str] = mapped_column(sa.String(32))
    provider_id: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )


deliveries = cast(sa.Table, Delivery.__table__)
