"""``/api/v1/workflows``: start, inspect, list, retry and cancel runs (DESIGN §5).

``GET /workflows/<x>`` reads a run by id while ``POST /workflows/<x>`` starts
the workflow named ``x``: one URL rule serves both, so a malformed run id is a
404 (no such run), never a 405 or a routing surprise. ``/workflows/bulk/retry``
is never read as the run ``bulk``: werkzeug ranks a rule's static parts above
its variables, whatever the order of registration.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE
from werkzeug.exceptions import BadRequest

from app.api import cursors
from app.api.errors import ApiError
from app.api.json_body import read_whole_body
from app.api.schemas import (
    BulkRequestSchema,
    BulkResultSchema,
    ErrorSchema,
    ForkSchema,
    IdempotencyHeaderSchema,
    RunListQuerySchema,
    RunPageSchema,
    RunSchema,
    SignalSchema,
    StartRunSchema,
    WaitQuerySchema,
)
from app.engine.bulk import Action, bulk_transition
from app.engine.manager import WorkflowManager
from app.engine.notify import Listener, TooManyWaiters, wait_for_run
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
UUID_SCHEMA = {"type": "string", "format": "uuid"}
RUN_ID = {"in": "path", "name": "run_id", "description": "a run id (UUID)", "schema": UUID_SCHEMA}
# GET reads a run: the same path parameter, stated as what GET accepts
RUN_ID_AS_NAME_OR_ID = {
    "in": "path",
    "name": "name_or_id",
    "required": True,
    "description": "the run's id (a UUID)",
    "schema": UUID_SCHEMA,
}
# the query parameter of GET one run (a manual parameter list replaces the generated one)
WAIT_PARAMETER = {
    "in": "query",
    "name": "wait",
    "required": False,
    "description": "seconds (0 < wait <= 60) to hold the answer until the run is finished; "
    "the run's current state is returned when they run out (200 either way)",
    "schema": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 60},
}


def manager() -> WorkflowManager:
    found: WorkflowManager = current_app.extensions["stepwise_manager"]
    return found


def await_run(name_or_id: str, seconds: float) -> None:
    """Hold the request until the run is finished or ``seconds`` pass.

    Parks this web thread (not a process: the web server runs threads), and
    at most ``WEB_MAX_WAITERS`` of them per process; one more gets a 503 with
    ``Retry-After`` rather than queueing behind the others.
    """
    try:
        run_id = uuid.UUID(name_or_id)
    except ValueError:
        return  # not a run id: the read that follows answers 404
    listener: Listener = current_app.extensions["stepwise_listener"]
    try:
        wait_for_run(listener, run_id, seconds)
    except TooManyWaiters as exc:
        raise ApiError(
            503,
            exc.code,
            "too many requests are waiting for runs in this process; retry shortly",
            details={"max_waiters": listener.max_waiters},
            headers={"Retry-After": "1"},
        ) from None


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


def posts_to_a_workflow(view: Callable[..., Any]) -> Callable[..., Any]:
    """POST to a run's URL is 405 (Allow: GET), before any body checks.

    Workflow names never contain a hyphen, so a UUID here is a run id: the
    resource exists, the method does not.
    """

    @wraps(view)
    def wrapper(*args: Any, name_or_id: str, **kwargs: Any) -> Any:
        if not _is_run_id(name_or_id):
            return view(*args, name_or_id=name_or_id, **kwargs)
        raise ApiError(
            405,
            "method_not_allowed",
            "this is a run: GET reads it; POST starts a workflow by name",
            headers={"Allow": "GET"},
        )

    return wrapper


def _is_run_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@blp.after_request
def allow_what_this_url_serves(response: Response) -> Response:
    """OPTIONS on the shared rule names the methods this URL really serves:
    a run id is read (GET), a workflow name is started (POST)."""
    args = request.view_args or {}
    if request.method == "OPTIONS" and "name_or_id" in args:
        served = "GET, HEAD, OPTIONS" if _is_run_id(args["name_or_id"]) else "POST, OPTIONS"
        response.headers["Allow"] = served
    return response


def run_location(run: dict[str, Any]) -> dict[str, str]:
    return {"Location": f"{blp.url_prefix}/workflows/{run['id']}"}


@blp.route("/workflows")
class RunList(MethodView):
    # an unknown query parameter is a 422 naming it, not silently ignored
    @blp.arguments(RunListQuerySchema, location="query", as_kwargs=True, unknown=RAISE)
    @blp.response(200, RunPageSchema)
    def get(self, **query: Any) -> dict[str, Any]:
        """List runs, newest first.

        Keyset pagination: pass the next_cursor of one page as cursor to get
        the next; next_cursor is null on the last page. Items carry no steps;
        GET one run for those.

        Filters combine with AND. Besides the named ones, input.<field>=<value>
        finds runs whose input has that value (input.email=ada@example.com;
        nested fields with dots, input.address.city=Paris; a value that reads
        as a JSON number, boolean or null also matches that typed value).
        """
        limit = query.pop("limit")
        cursor = cursors.from_api(query.pop("cursor", None))
        filters = RunFilter(**query, input_fields=input_fields_from(request.args))
        items, next_cursor = manager().list(limit=limit, cursor=cursor, filters=filters)
        return {"items": items, "next_cursor": cursors.to_api(next_cursor)}


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
    @blp.doc(parameters=[RUN_ID_AS_NAME_OR_ID, WAIT_PARAMETER])
    @blp.arguments(WaitQuerySchema, location="query", as_kwargs=True)
    @blp.response(200, RunSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="no run with this id")
    @blp.alt_response(
        405, schema=ErrorSchema, description="the path names a workflow: POST starts it"
    )
    @blp.alt_response(422, schema=ErrorSchema, description="wait is not in (0, 60]")
    @blp.alt_response(
        503, schema=ErrorSchema, description="too many waiters in this process (Retry-After)"
    )
    def get(self, name_or_id: str, wait: float | None = None) -> dict[str, Any]:
        """One run with its steps.

        With wait=N, the answer is held until the run is finished (succeeded,
        failed or cancelled) or N seconds have passed, whichever comes first;
        either way it is the run's state at that moment.
        """
        if name_or_id in manager().registry:  # /workflows/signup is the start resource
            raise ApiError(
                405,
                "method_not_allowed",
                f"{name_or_id} is a workflow: POST starts it; GET takes a run id",
                headers={"Allow": "POST"},
            )
        if wait is not None:
            await_run(name_or_id, wait)
        return manager().get(name_or_id)

    @posts_to_a_workflow
    @require_json_body
    @blp.arguments(StartRunSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, RunSchema, description="the run was recorded and sent to the workers")
    @blp.alt_response(
        200, schema=RunSchema, description="replay: the run this Idempotency-Key started"
    )
    @blp.alt_response(
        400, schema=ErrorSchema, description="malformed JSON, or nested over 32 levels"
    )
    @blp.alt_response(404, schema=ErrorSchema, description="no workflow with this name")
    @blp.alt_response(
        409, schema=ErrorSchema, description="Idempotency-Key already used with another body"
    )
    @blp.alt_response(413, schema=ErrorSchema, description="body larger than MAX_CONTENT_LENGTH")
    @blp.alt_response(415, schema=ErrorSchema, description="body is not JSON")
    def post(self, body: dict[str, Any], headers: dict[str, Any], name_or_id: str) -> Any:
        """Start a run of the workflow name_or_id.

        The input is validated against the workflow's schema (422 names each
        bad field). The run is recorded before it is sent: if the broker is
        down the run waits, pending, for the recovery sweep.
        """
        problems = current_app.extensions["stepwise_input_checks"].problems(
            name_or_id, body["input"]
        )
        if problems:
            raise ApiError(
                422,
                "invalid_input",
                f"input does not match the {name_or_id!r} schema",
                details={"input": problems},
            )
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


@blp.route("/workflows/<string:run_id>/fork", parameters=[RUN_ID])
class ForkRun(MethodView):
    @require_json_body
    @blp.arguments(ForkSchema, required=True)
    @blp.response(202, RunSchema, description="the new run, sent to the workers")
    @blp.alt_response(400, schema=ErrorSchema, description="malformed JSON")
    @blp.alt_response(404, schema=ErrorSchema, description="no run with this id")
    @blp.alt_response(409, schema=ErrorSchema, description="the source run is pending or running")
    @blp.alt_response(413, schema=ErrorSchema, description="body larger than MAX_CONTENT_LENGTH")
    @blp.alt_response(415, schema=ErrorSchema, description="body is not JSON")
    @blp.alt_response(422, schema=ErrorSchema, description="unknown step, or bad input")
    def post(self, body: dict[str, Any], run_id: str) -> Any:
        """Fork a finished run from one of its steps: a new run that reuses the
        outputs of the steps before it and runs the rest. The source is not changed."""
        run = manager().fork(run_id, body["from_step"], body.get("input"))
        return run, 202, run_location(run)


@blp.route("/workflows/<string:run_id>/cancel", parameters=[RUN_ID])
class CancelRun(MethodView):
    @blp.response(202, RunSchema, description="the run is cancelled")
    @blp.alt_response(404, schema=ErrorSchema, description="no run with this id")
    @blp.alt_response(409, schema=ErrorSchema, description="the run already finished")
    def post(self, run_id: str) -> Any:
        """Cancel a pending or running run; a running step may finish, no later step starts."""
        return manager().cancel(run_id), 202


@blp.route("/workflows/<string:run_id>/signals/<string:signal>", parameters=[
    RUN_ID, {"in": "path", "name": "signal", "description": "a signal the workflow declares"},
])
class DeliverSignal(MethodView):
    @require_json_body
    @blp.arguments(SignalSchema, required=True)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, RunSchema, description="the signal is stored (and a waiting step woken)")
    @blp.alt_response(400, schema=ErrorSchema, description="malformed JSON")
    @blp.alt_response(413, schema=ErrorSchema, description="body larger than MAX_CONTENT_LENGTH")
    @blp.alt_response(415, schema=ErrorSchema, description="body is not JSON")
    @blp.alt_response(404, schema=ErrorSchema, description="no run with this id")
    @blp.alt_response(409, schema=ErrorSchema, description="the run is finished")
    @blp.alt_response(422, schema=ErrorSchema, description="the workflow declares no such signal")
    def post(self, body: dict[str, Any], headers: dict[str, Any], run_id: str, signal: str) -> Any:
        """Deliver a signal to a run.

        A signal sent before the run reaches its wait is kept until it does. The
        same Idempotency-Key again is stored once.
        """
        run = manager().signal(
            run_id, signal, body.get("payload") or {}, headers.get("idempotency_key")
        )
        return run, 202
