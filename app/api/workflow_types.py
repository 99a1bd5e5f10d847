"""``GET /api/v1/workflow-types``: what can be started, and with which input.

The input schema shown is the same marshmallow schema that validates
``POST /api/v1/workflows/<name>``, converted to JSON Schema by apispec, so the
description cannot drift from the validation.
"""

from __future__ import annotations

from typing import Any

from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.schemas import WorkflowTypeListSchema
from app.engine.registry import Registry

blp = Blueprint(
    "workflow_types", __name__, url_prefix="/api/v1", description="Registered workflows"
)


def describe_workflows(registry: Registry, plugin: MarshmallowPlugin) -> list[dict[str, Any]]:
    assert plugin.converter is not None
    return [
        {
            "name": workflow.name,
            "description": workflow.description,
            "steps": [
                {
                    "name": s.name,
                    "position": s.position,
                    "transactional": s.transactional,
                    "after": list(s.after),
                    "kind": s.kind.value,
                    "signal": s.signal,
                    "conditional": s.when is not None,
                    "compensates": s.compensates,
                    "rate_limit": s.rate_limit,
                }
                for s in workflow.steps
            ],
            "signals": list(workflow.signals),
            "max_concurrent_runs": workflow.max_concurrent_runs,
            "input_schema": plugin.converter.schema2jsonschema(workflow.input_schema),
        }
        for workflow in registry
    ]


@blp.route("/workflow-types")
class WorkflowTypes(MethodView):
    @blp.response(200, WorkflowTypeListSchema)
    def get(self) -> dict[str, Any]:
        """Registered workflows (code-defined, then designed): their step graphs, signals,
        and the JSON Schema of their input."""
        from app.designer.service import designed_types

        designed = designed_types(current_app.extensions["stepwise_manager"])
        return {"items": [*current_app.extensions["stepwise_workflow_types"], *designed]}
