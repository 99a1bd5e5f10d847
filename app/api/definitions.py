"""``/api/v1/actions`` and ``/api/v1/workflow-definitions``: designed workflows (DESIGN §14).

A POST validates the whole definition and names every problem (422,
``invalid_definition``, ``details.problems``: each ``{where, code, message}``);
with ``?dry_run=true`` it stores nothing and answers 200 ``{"problems": []}``
when the definition is good. Each save of a name is its next version.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields

from app.api.errors import ApiError
from app.api.runs import require_json_body
from app.api.schemas import ErrorSchema
from app.designer import service, store
from app.engine.definition import NAME_PATTERN
from app.engine.manager import WorkflowManager

blp = Blueprint(
    "workflow_definitions", __name__, url_prefix="/api/v1",
    description="Designed workflows: building blocks, definitions and their versions",
)


def _manager() -> WorkflowManager:
    found: WorkflowManager = current_app.extensions["stepwise_manager"]
    return found


class ActionSchema(Schema):
    name = fields.String(required=True, metadata={"description": "the block's name"})
    description = fields.String(required=True, metadata={"description": "what it does"})
    params = fields.Dict(required=True, metadata={"description": "JSON Schema of its params"})
    reusable = fields.Boolean(
        required=True,
        metadata={"description": "declared in code with app.designer.reusable (false: built in)"},
    )


class ActionListSchema(Schema):
    items = fields.List(fields.Nested(ActionSchema), required=True,
                        metadata={"description": "every building block"})


class DefinitionStepSchema(Schema):
    name = fields.String(required=True, metadata={"description": "the step's name"})
    action = fields.String(required=True, metadata={"description": "a block from /actions"})
    params = fields.Dict(load_default=dict, metadata={"description": "strings may hold templates"})
    after = fields.List(fields.String(), load_default=list,
                        metadata={"description": "predecessors; none: starts with the run"})
    when = fields.Dict(allow_none=True, metadata={
        "description": 'condition, e.g. {"path": "steps.wait.timed_out", "equals": true}'})


class DefinitionInSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, metadata={"description": "the workflow's name"})
    description = fields.String(load_default="", metadata={"description": "what it does"})
    input_schema = fields.Dict(
        load_default=lambda: {"type": "object", "properties": {}},
        metadata={"description": "JSON Schema (an object) of a run's input"},
    )
    steps = fields.List(fields.Raw(), required=True,
                        metadata={"description": "the steps (see DefinitionStep)"})


class DefinitionSchema(Schema):
    name = fields.String(required=True, metadata={"description": "the workflow's name"})
    version = fields.Integer(required=True, metadata={"description": "1, 2, ... per save"})
    description = fields.String(required=True, metadata={"description": "what it does"})
    input_schema = fields.Dict(required=True,
                               metadata={"description": "JSON Schema of a run's input"})
    steps = fields.List(fields.Nested(DefinitionStepSchema), required=True,
                        metadata={"description": "its steps, as saved"})
    created_at = fields.AwareDateTime(required=True,
                                      metadata={"description": "when this version was saved"})


class DefinitionListSchema(Schema):
    items = fields.List(fields.Nested(DefinitionSchema), required=True,
                        metadata={"description": "definitions (one per version)"})


class DryRunQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    dry_run = fields.Boolean(load_default=False,
                             metadata={"description": "validate only; store nothing"})


class DryRunSchema(Schema):
    problems = fields.List(fields.Dict(), required=True,
                           metadata={"description": "empty: the definition is good"})


@blp.route("/actions")
class Actions(MethodView):
    @blp.response(200, ActionListSchema)
    def get(self) -> dict[str, Any]:
        """The building blocks of designed workflows, each with the JSON Schema of its params."""
        return {"items": service.actions_json()}


@blp.route("/workflow-definitions")
class Definitions(MethodView):
    @blp.response(200, DefinitionListSchema)
    def get(self) -> dict[str, Any]:
        """Every designed workflow, at its latest version."""
        return {"items": store.latest(_manager().engine)}

    @require_json_body
    @blp.arguments(DryRunQuerySchema, location="query", as_kwargs=True)
    @blp.arguments(DefinitionInSchema)
    @blp.response(201, DefinitionSchema, description="saved as the next version of its name")
    @blp.alt_response(200, schema=DryRunSchema, description="dry run: no problems found")
    @blp.alt_response(
        400, schema=ErrorSchema, description="malformed JSON, or nested over 32 levels"
    )
    @blp.alt_response(413, schema=ErrorSchema, description="body larger than MAX_CONTENT_LENGTH")
    @blp.alt_response(415, schema=ErrorSchema, description="body is not JSON")
    @blp.alt_response(422, schema=ErrorSchema, description="problems, each named")
    def post(self, body: dict[str, Any], dry_run: bool = False) -> Any:
        """Save a designed workflow (a new name is version 1; each save adds one)."""
        manager = _manager()
        if dry_run:
            problems = service.problems_of(manager, body)
            if problems:
                raise _invalid(problems)
            return jsonify({"problems": []})  # a Response: not the 201 schema
        try:
            return service.save(manager, body), 201
        except service.DefinitionInvalid as exc:
            raise _invalid(exc.details["problems"], exc.message) from None


def _invalid(problems: list[dict[str, str]], message: str | None = None) -> ApiError:
    return ApiError(
        422, "invalid_definition",
        message or f"the definition has {len(problems)} problem(s)",
        details={"problems": problems},
    )


@blp.route("/workflow-definitions/<string:name>", parameters=[
    {"in": "path", "name": "name", "description": "a designed workflow's name"},
])
class DefinitionVersions(MethodView):
    @blp.response(200, DefinitionListSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="no designed workflow of this name")
    def get(self, name: str) -> dict[str, Any]:
        """Every version of one designed workflow, newest first."""
        found = store.versions(_manager().engine, name) if NAME_PATTERN.match(name) else []
        if not found:
            raise ApiError(404, "not_found", f"no designed workflow named {name!r}")
        return {"items": found}
