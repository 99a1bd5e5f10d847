"""Marshmallow schemas of the HTTP contract (DESIGN §5); they also write the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields, validate

from app.api.cursors import CURSOR_PATTERN
from app.engine.manager import MAX_PAGE
from app.engine.states import RunStatus, StepStatus

RUN_STATUSES = [s.value for s in RunStatus]
STEP_STATUSES = [s.value for s in StepStatus]


class UtcDateTime(fields.DateTime):
    """ISO 8601 in UTC with an explicit zone, whatever the database session's zone is."""

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return super()._serialize(value, attr, obj, **kwargs)


def _time(description: str) -> UtcDateTime:
    return UtcDateTime(allow_none=True, metadata={"description": description})


class StepSchema(Schema):
    name = fields.String(required=True, metadata={"description": "the step's name"})
    position = fields.Integer(required=True, metadata={"description": "0-based order in the run"})
    status = fields.String(
        required=True,
        validate=validate.OneOf(STEP_STATUSES),
        metadata={"description": "where the step stands"},
    )
    attempts = fields.Integer(
        required=True, metadata={"description": "attempts started so far, the first included"}
    )
    output = fields.Raw(allow_none=True, metadata={"description": "the step's JSON output"})
    error = fields.Dict(
        allow_none=True,
        metadata={"description": "type, message, step, attempt, retryable of the last failure"},
    )
    started_at = _time("when the current or last attempt started")
    finished_at = _time("when the step succeeded or failed for good")


class RunSummarySchema(Schema):
    id = fields.UUID(required=True, metadata={"description": "the run's id"})
    name = fields.String(required=True, metadata={"description": "the workflow's name"})
    status = fields.String(
        required=True,
        validate=validate.OneOf(RUN_STATUSES),
        metadata={"description": "where the run stands"},
    )
    input = fields.Dict(
        required=True, metadata={"description": "the input the run was started with, as stored"}
    )
    output = fields.Raw(
        allow_none=True, metadata={"description": "outputs of the steps by name, once succeeded"}
    )
    error = fields.Dict(
        allow_none=True, metadata={"description": "type, message, step, attempt, retryable"}
    )
    created_at = UtcDateTime(required=True, metadata={"description": "when the run was recorded"})
    started_at = _time("when the first step started")
    finished_at = _time("when the run reached succeeded, failed or cancelled")


class RunSchema(RunSummarySchema):
    steps = fields.List(
        fields.Nested(StepSchema), required=True, metadata={"description": "the run's steps, in order"}
    )


class RunPageSchema(Schema):
    items = fields.List(
        fields.Nested(RunSummarySchema),
        required=True,
        metadata={"description": "runs, newest first, without their steps"},
    )
    next_cursor = fields.String(
        allow_none=True,
        required=True,
        validate=validate.Regexp(CURSOR_PATTERN),
        metadata={"description": "pass as cursor for the next page; null on the last page"},
    )


class RunListQuerySchema(Schema):
    status = fields.String(
        validate=validate.OneOf(RUN_STATUSES), metadata={"description": "only runs in this status"}
    )
    name = fields.String(
        validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,62}$", error="not a workflow name"),
        metadata={"description": "only runs of the workflow with this name"},
    )
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": "the most runs on one page"},
    )
    cursor = fields.String(
        validate=validate.Regexp(CURSOR_PATTERN, error="not a cursor returned by this API"),
        metadata={
            "description": "the next_cursor of the previous page: the created-at time in "
            "microseconds since the epoch and the id of that page's last run"
        },
    )


class StartRunSchema(Schema):
    input = fields.Dict(
        required=True,
        metadata={
            "description": "validated against the workflow's input schema "
            "(see GET /api/v1/workflow-types)",
            "example": {"email": "ada@example.com", "name": "Ada Lovelace", "plan": "pro"},
        },
    )


class IdempotencyHeaderSchema(Schema):
    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Length(min=1, max=255),
        metadata={
            "description": "same key and same body again → 200 with the same run; "
            "same key and another body → 409"
        },
    )


class StepTypeSchema(Schema):
    name = fields.String(required=True, metadata={"description": "the step's name"})
    position = fields.Integer(required=True, metadata={"description": "0-based order"})
    transactional = fields.Boolean(
        required=True,
        metadata={"description": "its database writes commit with its checkpoint (exactly once)"},
    )


class WorkflowTypeSchema(Schema):
    name = fields.String(required=True, metadata={"description": "the name to start it by"})
    description = fields.String(required=True, metadata={"description": "what the workflow does"})
    steps = fields.List(
        fields.Nested(StepTypeSchema), required=True, metadata={"description": "its steps, in order"}
    )
    input_schema = fields.Dict(
        required=True, metadata={"description": "JSON Schema of the input a run takes"}
    )


class WorkflowTypeListSchema(Schema):
    items = fields.List(
        fields.Nested(WorkflowTypeSchema),
        required=True,
        metadata={"description": "every registered workflow"},
    )


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"description": "stable, machine-readable"})
    message = fields.String(required=True, metadata={"description": "for people"})
    details = fields.Dict(required=True, metadata={"description": "e.g. each bad field by name"})


class ErrorSchema(Schema):
    error = fields.Nested(
        ErrorBodySchema, required=True, metadata={"description": "what went wrong"}
    )


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"description": "ok"})


class ReadinessSchema(Schema):
    status = fields.String(required=True, metadata={"description": "ready"})
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "each dependency (database, broker) and its state"},
    )
