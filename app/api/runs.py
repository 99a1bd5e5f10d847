"""``/api/v1/workflows``: start, inspect, list, retry and cancel runs (DESIGN §5).

``GET /workflows/<x>`` reads a run by id while ``POST /workflows/<x>`` starts
the workflow named ``x``: one URL rule serves both, so a malformed run id is a
404 (no such run), never a 405 or a routing surprise. ``/workflows/bulk/retry``
is never read as the run ``bulk``: werkzeug ranks a rule's static parts above
its variables, whatever the order of registration.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.exceptions import BadRequest

from app.api.errors import ApiError
from app.api.schemas import (
    BulkRequestSchema,
    BulkResultSchema,
    ErrorSchema,
    IdempotencyHeaderSchema,
    RunListQuerySchema,
    RunPageSchema,
    RunSchema,
    StartRunSchema,
)
from app.engine.bulk import Action, bulk_transition
from app.engine.manager import WorkflowManager
from app.engine.queries import RunFilter, input_fields_from

blp = Blueprint(
    "workflows",
    __name__,
    url_prefix="/api/v1",
    description="Start, inspect, list, retry and cancel workflow runs",
)

NAME_OR_ID = {
    "in": "path",
    "name": "name_or_id",
    "description": "GET: a run id (UUID). POST: the name of a workflow to start.",
    "example": "signup",
}
RUN_ID = {"in": "path", "name": "run_id", "description": "a run id (UUID)"}


def manager() -> WorkflowManager:
    found: WorkflowManager = current_app.extensions["stepwise_manager"]
    return found


def require_json_body(view: Callable[..., Any]) -> Callable[..., Any]:
    """415 unless the body is declared JSON, 400 unless it parses — before validation."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not request.is_json:
            raise ApiError(
                415,
                "unsupported_media_type",
                "send the request body as JSON (Content-Type: application/json)",
                details={"content_type": request.mimetype or None},
            )
        read_whole_body()
        try:
            request.get_json()
        except BadRequest:
            raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None
        return view(*args, **kwargs)

    return wrapper


def read_whole_body() -> None:
    """Read (and cache) the body; 413 when it is over ``MAX_CONTENT_LENGTH``.

    werkzeug stops a body without Content-Length (chunked) at the limit
    without an error, which would turn an oversized body into "malformed
    JSON"; one more byte read past the limit raises the 413 instead.
    """
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        request.stream.read(1)


def run_location(run: dict[str, Any]) -> dict[str, str]:
    return {"Location": f"{blp.url_prefix}/workflows/{run['id']}"}


@blp.route("/workflows")
class RunList(MethodView):
    @blp.arguments(RunListQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, RunPageSchema)
    def get(self, **query: Any) -> dict[str, Any]:
        """List runs, newest first.

        Keyset pagination: pass the `next_cursor` of one page as `cursor` to
        get the next; `next_cursor` is null on the last page. Items carry no
        `steps`; GET one run for those.

        Filters combine with AND. Besides the named ones, `input.<field>=<value>`
        finds runs whose input has that value (`input.email=ada@example.com`;
        nested fields with dots, `input.address.city=Paris`; a value that reads
        as a JSON number, boolean or null also matches that typed value).
        """
        limit, cursor = query.pop("limit"), query.pop("cursor", None)
        filters = RunFilter(**query, input_fields=input_fields_from(request.args))
        items, next_cursor = manager().list(limit=limit, cursor=cursor, filters=filters)
        return {"items": items, "next_cursor": next_cursor}


def _bulk(action: Action, body: dict[str, Any]) -> dict[str, Any]:
    limit = body.pop("limit")
    return bulk_transition(manager(), action, RunFilter(**body), limit).as_dict()


@blp.route("/workflows/bulk/retry")
class BulkRetry(MethodView):
    @require_json_body
    @blp.arguments(BulkRequestSchema)
    @blp.response(200, BulkResultSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="malformed JSON")
    @blp.alt_response(415, schema=ErrorSchema, description="body is not JSON")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Retry every failed or cancelled run the filters match.

        The body holds the list's filters (`name`, `status`, `error_type`,
        `created_after`, `created_before`) and `limit`; the newest `limit`
        matching runs each get their own compare-and-set transition. A run
        that cannot make it is listed in `skipped` with the reason. Unknown
        fields and bad values are a 422.
        """
        return _bulk("retry", body)


@blp.route("/workflows/bulk/cancel")
class BulkCancel(MethodView):
    @require_json_body
    @blp.arguments(BulkRequestSchema)
    @blp.response(200, BulkResultSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="malformed JSON")
    @blp.alt_response(415, schema=ErrorSchema, description="body is not JSON")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Cancel every pending or running run the filters match.

        The body holds the list's filters (`name`, `status`, `error_type`,
        `created_after`, `created_before`) and `limit`; the newest `limit`
        matching runs each get their own compare-and-set transition. A run
        that cannot make it is listed in `skipped` with the reason. Unknown
        fields and bad values are a 422.
        """
        return _bulk("cancel", body)


@blp.route("/workflows/<string:name_or_id>", parameters=[NAME_OR_ID])
class WorkflowOrRun(MethodView):
    @blp.response(200, RunSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="no run with this id")
    def get(self, name_or_id: str) -> dict[str, Any]:
        """One run with its steps."""
        return manager().get(name_or_id)

    @require_json_body
    @blp.arguments(StartRunSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, RunSchema, description="the run was recorded and sent to the workers")
    @blp.alt_response(
        200, schema=RunSchema, description="replay: the run this Idempotency-Key started"
    )
    @blp.alt_response(400, schema=ErrorSchema, description="malformed JSON")
    @blp.alt_response(404, schema=ErrorSchema, description="no workflow with this name")
    @blp.alt_response(
        409, schema=ErrorSchema, description="Idempotency-Key already used with another body"
    )
    @blp.alt_response(413, schema=ErrorSchema, description="body larger than MAX_CONTENT_LENGTH")
    @blp.alt_response(415, schema=ErrorSchema, description="body is not JSON")
    def post(self, body: dict[str, Any], headers: dict[str, Any], name_or_id: str) -> Any:
        """Start a run of the workflow `name_or_id`.

        The input is validated against the workflow's schema (422 names each
        bad field). The run is recorded before it is sent: if the broker is
        down the run waits, pending, for the recovery sweep.
        """
        result = manager().start(
            name_or_id, body["input"], idempotency_key=headers.get("idempotency_key")
        )
        return result.run, 202 if result.created else 200, run_location(result.run)


@blp.route("/workflows/<string:run_id>/retry", parameters=[RUN_ID])
class RetryRun(MethodView):
    @blp.response(202, RunSchema, description="the run is pending again")
    @blp.alt_response(404, schema=ErrorSchema, description="no run with this id")
    @blp.alt_response(409, schema=ErrorSchema, description="the run is not failed or cancelled")
    def post(self, run_id: str) -> Any:
        """Retry a failed or cancelled run from its first step that did not succeed."""
        return manager().retry(run_id), 202


@blp.route("/workflows/<string:run_id>/cancel", parameters=[RUN_ID])
class CancelRun(MethodView):
    @blp.response(202, RunSchema, description="the run is cancelled")
    @blp.alt_response(404, schema=ErrorSchema, description="no run with this id")
    @blp.alt_response(409, schema=ErrorSchema, description="the run already finished")
    def post(self, run_id: str) -> Any:
        """Cancel a pending or running run; a running step may finish, no later step starts."""
        return manager().cancel(run_id), 202
