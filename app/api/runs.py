"""``/api/v1/workflows``: start, inspect, list, retry and cancel runs (DESIGN §5).

``GET /workflows/<x>`` reads a run by id while ``POST /workflows/<x>`` starts
the workflow named ``x``: one URL rule serves both, so a malformed run id is a
404 (no such run), never a 405 or a routing surprise.
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
from app.api.schemas import (
    ErrorSchema,
    IdempotencyHeaderSchema,
    RunListQuerySchema,
    RunPageSchema,
    RunSchema,
    StartRunSchema,
)
from app.engine.manager import WorkflowManager

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
    # an unknown query parameter is a 422 naming it, not silently ignored
    @blp.arguments(RunListQuerySchema, location="query", as_kwargs=True, unknown=RAISE)
    @blp.response(200, RunPageSchema)
    def get(self, **query: Any) -> dict[str, Any]:
        """List runs, newest first.

        Keyset pagination: pass the next_cursor of one page as cursor to get
        the next; next_cursor is null on the last page. Items carry no steps;
        GET one run for those.
        """
        query["cursor"] = cursors.from_api(query.get("cursor"))
        items, next_cursor = manager().list(**query)
        return {"items": items, "next_cursor": cursors.to_api(next_cursor)}


@blp.route("/workflows/<string:name_or_id>", parameters=[NAME_OR_ID])
class WorkflowOrRun(MethodView):
    @blp.doc(parameters=[RUN_ID_AS_NAME_OR_ID])
    @blp.response(200, RunSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="no run with this id")
    @blp.alt_response(
        405, schema=ErrorSchema, description="the path names a workflow: POST starts it"
    )
    def get(self, name_or_id: str) -> dict[str, Any]:
        """One run with its steps."""
        if name_or_id in manager().registry:  # /workflows/signup is the start resource
            raise ApiError(
                405,
                "method_not_allowed",
                f"{name_or_id} is a workflow: POST starts it; GET takes a run id",
                headers={"Allow": "POST"},
            )
        return manager().get(name_or_id)

    @posts_to_a_workflow
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


@blp.route("/workflows/<string:run_id>/cancel", parameters=[RUN_ID])
class CancelRun(MethodView):
    @blp.response(202, RunSchema, description="the run is cancelled")
    @blp.alt_response(404, schema=ErrorSchema, description="no run with this id")
    @blp.alt_response(409, schema=ErrorSchema, description="the run already finished")
    def post(self, run_id: str) -> Any:
        """Cancel a pending or running run; a running step may finish, no later step starts."""
        return manager().cancel(run_id), 202
