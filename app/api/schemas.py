"""Marshmallow schemas of the HTTP contract (DESIGN §5); they also write the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
)

from app import json_vetting
from app.api.cursors import CURSOR_PATTERN
from app.engine.batch import BATCH_MAX
from app.engine.bulk import BULK_MAX
from app.engine.manager import MAX_PAGE
from app.engine.models import runs
from app.engine.queries import MIN_ID_PREFIX, id_range
from app.engine.states import RunStatus, StepKind, StepStatus

KEY_LENGTH: int = runs.c.idempotency_key.type.length


def storable(value: str) -> None:
    """Postgres text holds no NUL character: refuse it here, as a 422, not as a 500 there."""
    if "\x00" in value:
        raise ValidationError(f"The value {json_vetting.NUL}.")


# the same rule, stated in the document (a JSON Schema pattern) for generated clients
NO_NUL = validate.Regexp(r"^[^\u0000]*$", error="must not contain a NUL character (\\u0000)")

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


class AttemptSchema(Schema):
    attempt = fields.Integer(required=True, metadata={"description": "1 for the first attempt"})
    status = fields.String(
        required=True, metadata={"description": "how the attempt ended: succeeded, failed, skipped"}
    )
    error = fields.Dict(
        allow_none=True, metadata={"description": "type, message, step, attempt, retryable"}
    )
    started_at = fields.String(
        allow_none=True, metadata={"description": "when the attempt started (ISO 8601)"}
    )
    finished_at = fields.String(
        allow_none=True, metadata={"description": "when the attempt ended (ISO 8601)"}
    )


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
    next_attempt_at = _time("when a retrying step's next attempt is due")
    after = fields.List(
        fields.String(), required=True, metadata={"description": "names of its predecessors"}
    )
    kind = fields.String(
        required=True,
        validate=validate.OneOf([k.value for k in StepKind]),
        metadata={"description": "task, sleep, signal (a wait for one), or compensation"},
    )
    signal = fields.String(
        allow_none=True, metadata={"description": "the signal a signal step waits for"}
    )
    wake_at = _time("when a waiting step wakes up: its sleep's end or its signal's timeout")
    waiting_for = fields.String(
        allow_none=True,
        metadata={"description": "why a pending step has not started, when known "
                  "(e.g. no live worker has registered it)"},
    )
    history = fields.List(
        fields.Nested(AttemptSchema),
        required=True,
        metadata={"description": "every finished attempt, oldest first"},
    )


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
    idempotency_key = fields.String(
        allow_none=True, metadata={"description": "the Idempotency-Key the run was started with"}
    )
    recovery_count = fields.Integer(
        required=True, metadata={"description": "times a lost worker's step was taken over"}
    )
    forked_from = fields.Dict(
        allow_none=True, metadata={"description": "{run_id, step} of the run this was forked from"}
    )
    definition_version = fields.Integer(
        allow_none=True,
        metadata={"description": "the version of a designed workflow the run started with "
                  "(null for a code-defined workflow)"},
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


class FilterTime(fields.AwareDateTime):
    """ISO 8601; a time without a zone is UTC. In a query string an unescaped
    ``+01:00`` arrives as `` 01:00``: put the plus back rather than refuse it.
    Loaded as UTC, since Postgres refuses offsets beyond ±15:59."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", default_timezone=UTC, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str) and len(value) > 6 and value[-6] == " ":
            value = value[:-6] + "+" + value[-5:]
        result: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:  # Postgres refuses offsets beyond ±15:59; in UTC every offset is fine
            return result.astimezone(UTC)
        except OverflowError:
            raise ValidationError("out of range") from None


def _id_prefix(value: str) -> None:
    if id_range(value) is None:
        raise ValidationError(f"at least {MIN_ID_PREFIX} hexadecimal digits of a run id")


class RunFilterSchema(Schema):
    """The filters shared by the list and the bulk actions (``app.engine.queries``)."""

    name = fields.String(
        validate=[validate.Length(min=1, max=200), storable, NO_NUL],
        metadata={"description": "workflow name"},
    )
    status = fields.String(
        validate=validate.OneOf(RUN_STATUSES), metadata={"description": "only runs in this status"}
    )
    error_type = fields.String(
        validate=[validate.Length(min=1, max=200), storable, NO_NUL],
        metadata={"description": "the `type` of the run's error, e.g. `NonRetryableError`"},
    )
    created_after = FilterTime(
        metadata={"description": "runs created at or after this time (ISO 8601; UTC if no zone)"}
    )
    created_before = FilterTime(
        metadata={"description": "runs created before this time (ISO 8601; UTC if no zone)"}
    )



class RunListQuerySchema(RunFilterSchema):
    """The list's query; ``input.<field>`` parameters are read apart (``input_fields_from``)."""

    @pre_load
    def _input_fields_apart(self, data: Any, **kwargs: Any) -> Any:
        if hasattr(data, "items"):
            return {k: v for k, v in data.items() if not str(k).startswith("input.")}
        return data

    id_prefix = fields.String(
        validate=[validate.Regexp(r"^[0-9a-fA-F]{4}(-?[0-9a-fA-F]){0,28}-?$"), _id_prefix],
        metadata={"description": "the start of a run id, e.g. the 8 characters the dashboard shows"},
    )
    idempotency_key = fields.String(
        validate=[validate.Length(min=1, max=KEY_LENGTH), storable, NO_NUL],
        metadata={"description": "only the run started with this Idempotency-Key"},
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


class BulkRequestSchema(RunFilterSchema):
    class Meta:
        unknown = RAISE

    limit = fields.Integer(
        load_default=BULK_MAX,
        validate=validate.Range(min=1, max=BULK_MAX),
        metadata={"description": f"act on at most this many runs, newest first (≤ {BULK_MAX})"},
    )


class SkippedRunSchema(Schema):
    id = fields.UUID(required=True, metadata={"description": "the run left unchanged"})
    reason = fields.String(
        required=True,
        metadata={"description": "why", "example": "cannot retry a run that is running"},
    )


class BulkResultSchema(Schema):
    matched = fields.Integer(required=True, metadata={"description": "runs the filters matched"})
    changed = fields.List(
        fields.UUID(), required=True, metadata={"description": "runs whose transition applied"}
    )
    skipped = fields.List(
        fields.Nested(SkippedRunSchema),
        required=True,
        metadata={"description": "matched runs left as they were, each with the reason"},
    )


MAX_WAIT_SECONDS = 60


class WaitQuerySchema(Schema):
    wait = fields.Float(
        allow_nan=False,
        validate=validate.Range(min=0, min_inclusive=False, max=MAX_WAIT_SECONDS),
        metadata={
            "description": "seconds (0 < wait <= 60) to hold the answer until the run is "
            "finished; the run's current state is returned when they run out (200 either way)"
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


def idempotency_key_field(description: str, **options: Any) -> fields.String:
    """An idempotency key as the API takes it: 1 to KEY_LENGTH storable characters."""
    return fields.String(
        validate=[validate.Length(min=1, max=KEY_LENGTH), storable, NO_NUL],
        metadata={"description": description},
        **options,
    )


class IdempotencyHeaderSchema(Schema):
    idempotency_key = idempotency_key_field(
        "same key and same body again → 200 with the same run; same key and another body → 409",
        data_key="Idempotency-Key",
    )


class BatchItemSchema(Schema):
    class Meta:
        unknown = RAISE

    input = fields.Dict(
        required=True,
        metadata={"description": "validated against the workflow's input schema, like a start's"},
    )
    idempotency_key = idempotency_key_field(
        "as the Idempotency-Key header of a start: the same key with the "
        "same input gives back the run it started; distinct within one batch"
    )


class BatchStartSchema(Schema):
    class Meta:
        unknown = RAISE

    items = fields.List(
        fields.Nested(BatchItemSchema),
        required=True,
        validate=validate.Length(min=1, max=BATCH_MAX),
        metadata={"description": f"the runs to start, 1 to {BATCH_MAX}, all or none"},
    )


class BatchResultSchema(Schema):
    items = fields.List(
        fields.Nested(RunSchema),
        required=True,
        metadata={"description": "one run per item, in the order of the request"},
    )
    created = fields.Integer(
        required=True,
        metadata={"description": "how many of them this call started (the rest are replays)"},
    )


class StepTypeSchema(Schema):
    name = fields.String(required=True, metadata={"description": "the step's name"})
    position = fields.Integer(required=True, metadata={"description": "0-based order"})
    transactional = fields.Boolean(
        required=True,
        metadata={"description": "its database writes commit with its checkpoint (exactly once)"},
    )
    after = fields.List(
        fields.String(), required=True, metadata={"description": "names of the steps it waits for"}
    )
    kind = fields.String(
        required=True, metadata={"description": "task, sleep, signal (a wait), or compensation"}
    )
    signal = fields.String(
        allow_none=True, metadata={"description": "the signal a signal step waits for"}
    )
    conditional = fields.Boolean(
        required=True, metadata={"description": "runs only when its condition holds"}
    )
    compensates = fields.String(
        allow_none=True, metadata={"description": "the step a compensation step undoes"}
    )
    rate_limit = fields.Float(
        allow_none=True,
        metadata={"description": "most starts per second across all workers (null: no limit)"},
    )


class WorkflowTypeSchema(Schema):
    name = fields.String(required=True, metadata={"description": "the name to start it by"})
    description = fields.String(required=True, metadata={"description": "what the workflow does"})
    steps = fields.List(
        fields.Nested(StepTypeSchema), required=True, metadata={"description": "its steps, in order"}
    )
    signals = fields.List(
        fields.String(), required=True, metadata={"description": "the signals it declares"}
    )
    max_concurrent_runs = fields.Integer(
        allow_none=True,
        metadata={"description": "most runs executing steps at once (null: no cap)"},
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


class ForkSchema(Schema):
    class Meta:
        unknown = RAISE

    from_step = fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,62}$", error="not a step name"),
        metadata={"description": "the step to run again; the steps it depends on keep their outputs"},
    )
    input = fields.Dict(
        metadata={"description": "new input for the fork (validated like a start); "
                  "the source run's input when absent"},
    )


class SignalSchema(Schema):
    payload = fields.Dict(
        load_default=dict,
        metadata={"description": "becomes the output of the step waiting for the signal"},
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
