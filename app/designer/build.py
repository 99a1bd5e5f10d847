"""A stored definition as a frozen ``Workflow`` the engine runs like any other.

Task blocks become step functions that fill in their templates and call the
block; ``sleep`` and ``wait_for_signal`` become the engine's durable waits;
``when`` becomes a predicate over the run's input and outputs. Steps name
their predecessors explicitly: a step without ``after`` starts with the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
import marshmallow

from app.designer.actions import Action, BadParams, find_action
from app.designer.conditions import predicate, scope_of
from app.designer.templates import render
from app.engine.definition import StepContext, Workflow
from app.engine.errors import NonRetryableError


class JsonSchemaInput(marshmallow.Schema):
    """A marshmallow face on a JSON Schema, so the engine validates a designed input as usual.

    The input is stored as sent (JSON in, the same JSON out).
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        super().__init__()
        self.json_schema = dict(schema)
        self._validator = jsonschema.Draft7Validator(self.json_schema)

    def load(self, data: Any, **_: Any) -> Any:
        problems = input_problems(self._validator, data)
        if problems:
            raise marshmallow.ValidationError(problems)
        return dict(data)

    def dump(self, obj: Any, **_: Any) -> Any:
        return dict(obj)


def input_problems(validator: jsonschema.Draft7Validator, payload: Any) -> dict[str, list[str]]:
    """``{field: [messages]}`` (``_schema`` for the object itself), as the API reports input."""
    found: dict[str, list[str]] = {}
    for error in validator.iter_errors(payload):
        if error.validator == "required" and not error.absolute_path:
            missing = error.message.split("'")[1] if "'" in error.message else "_schema"
            found.setdefault(missing, []).append("Missing data for required field.")
            continue
        if error.validator == "additionalProperties" and not error.absolute_path:
            extra = set(payload) - set(error.schema.get("properties", {}))
            for name in sorted(extra):
                found.setdefault(name, []).append("Unknown field.")
            continue
        field = str(error.absolute_path[0]) if error.absolute_path else "_schema"
        found.setdefault(field, []).append(error.message)
    return found


class DesignedWorkflow(Workflow):
    """A ``Workflow`` built from a stored definition; ``version`` is stamped on its runs."""

    version: int
    definition: dict[str, Any]


def _task(action: Action, params: Mapping[str, Any]) -> Any:
    assert action.run is not None
    run = action.run

    def function(ctx: StepContext) -> dict[str, Any]:
        filled = render(dict(params), scope_of(ctx))
        errors = sorted(
            jsonschema.Draft7Validator(action.params).iter_errors(filled), key=lambda e: e.path
        )
        if errors:
            where = ".".join(str(p) for p in errors[0].absolute_path) or "params"
            raise BadParams(
                f"{action.name}: {where}: {errors[0].message} (after filling in templates)"
            )
        return run(ctx, filled)

    function.__name__ = f"designed_{action.name}"
    return function


class BlockUnavailable(NonRetryableError):
    """A step's block is no longer declared (its module left ``WORKFLOW_MODULES``)."""

    code = "block_unavailable"


def _missing(name: str) -> Action:
    """Stands in for a reusable block that is gone, so listings still load and the
    step fails for good with a clear reason instead of the whole definition."""

    def run(ctx: StepContext, params: Mapping[str, Any]) -> dict[str, Any]:
        raise BlockUnavailable(f"no block {name!r} is declared on this worker "
                               "(is its module in WORKFLOW_MODULES?)")

    return Action(name, "unavailable", {"type": "object"}, None, run=run)


def build(name: str, version: int, definition: Mapping[str, Any]) -> DesignedWorkflow:
    """The frozen workflow of one stored version (the definition was validated when saved)."""
    steps = list(definition["steps"])
    signals = sorted({
        str(s["params"]["signal"]) for s in steps if s["action"] == "wait_for_signal"
    })
    workflow = DesignedWorkflow(
        name,
        input_schema=JsonSchemaInput(definition.get("input_schema") or {"type": "object"}),
        description=str(definition.get("description") or ""),
        signals=signals,
        register=False,
    )
    workflow.version = version
    workflow.definition = dict(definition)
    for step in steps:
        action = find_action(step["action"]) or _missing(str(step["action"]))
        params = dict(step.get("params") or {})
        after = tuple(step.get("after") or ())
        when = predicate(step["when"]) if step.get("when") else None
        if action.kind == "sleep":
            workflow.sleep(step["name"], seconds=params["seconds"], after=after, when=when)
        elif action.kind == "signal":
            workflow.wait_for_signal(
                step["name"], signal=params["signal"], timeout=params.get("timeout"),
                after=after, when=when,
            )
        else:
            workflow.step(step["name"], after=after, when=when)(_task(action, params))
    workflow.freeze()
    return workflow
