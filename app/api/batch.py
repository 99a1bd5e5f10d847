"""``POST /api/v1/workflows/<name>/batch``: start many runs in one transaction (issue 15).

The route belongs to the workflows blueprint (``app.api.runs.blp``); importing
this module adds it, and ``app.api`` imports it before the blueprint is
registered. Its path has a static last segment, so it never meets the
``/workflows/<run_id>/...`` rules (``retry``, ``cancel``, ``fork``): werkzeug
matches static parts exactly, and a run id is never a workflow name.

Each item's input is held to the published JSON Schema first, as a single
start's is (``app.api.input_check``), then ``WorkflowManager.start_many``
validates it with the workflow's own schema and records every run, or none.
The OpenAPI document shows one batch operation per workflow, with that
workflow's input schema (``app.api.openapi``).
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from app.api.errors import ApiError
from app.api.runs import blp, manager, require_json_body
from app.api.schemas import BatchResultSchema, BatchStartSchema, ErrorSchema

WORKFLOW_NAME = {
    "in": "path",
    "name": "name",
    "description": "the name of the workflow to start",
    "example": "signup",
}


@blp.route("/workflows/<string:name>/batch", parameters=[WORKFLOW_NAME])
class StartBatch(MethodView):
    @require_json_body
    @blp.arguments(BatchStartSchema)
    @blp.response(202, BatchResultSchema, description="the new runs were recorded and sent")
    @blp.alt_response(
        200, schema=BatchResultSchema, description="replay: every item's key had started its run"
    )
    @blp.alt_response(
        400, schema=ErrorSchema, description="malformed JSON, or nested over 32 levels"
    )
    @blp.alt_response(404, schema=ErrorSchema, description="no workflow with this name")
    @blp.alt_response(
        409, schema=ErrorSchema, description="an item's key was already used with another input"
    )
    @blp.alt_response(413, schema=ErrorSchema, description="body larger than MAX_CONTENT_LENGTH")
    @blp.alt_response(415, schema=ErrorSchema, description="body is not JSON")
    @blp.alt_response(
        422, schema=ErrorSchema, description="bad items, each named by its index; nothing started"
    )
    def post(self, body: dict[str, Any], name: str) -> Any:
        """Start many runs of the workflow name in one transaction: all of them or none.

        Each item is {"input": {...}, "idempotency_key": "..." (optional)}. A bad
        item is a 422 whose details name it by index ({"items": {"3": {"input":
        {"email": [...]}}}}) and nothing is started. An item whose key already
        started a run with the same input gives back that run; with another input
        the whole batch is a 409. 202 when at least one run was started, 200 when
        every item was a replay.
        """
        checks = current_app.extensions["stepwise_input_checks"]
        problems: dict[str, Any] = {}
        for index, item in enumerate(body["items"]):
            found = checks.problems(name, item["input"])
            if found:
                problems[str(index)] = {"input": found}
        if problems:
            raise ApiError(
                422,
                "invalid_input",
                f"{len(problems)} of {len(body['items'])} items do not match the {name!r} "
                "schema; nothing was started",
                details={"items": problems},
            )
        results = manager().start_many(name, body["items"])
        created = sum(1 for r in results if r.created)
        return {"items": [r.run for r in results], "created": created}, 202 if created else 200
