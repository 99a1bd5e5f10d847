"""What the API and the designer page both do with a definition: check it, save it, show it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.designer import store
from app.designer.actions import all_actions
from app.designer.validation import Problem, validate
from app.engine.errors import InvalidInput
from app.engine.manager import WorkflowManager
from app.settings import get_settings


class DefinitionInvalid(InvalidInput):
    """A definition with problems; ``details["problems"]`` names each one."""

    code = "invalid_definition"


def problems_of(manager: WorkflowManager, body: Mapping[str, Any]) -> list[Problem]:
    return validate(
        body, code_workflows=[w.name for w in manager.registry], settings=get_settings()
    )


def save(manager: WorkflowManager, body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and store ``body`` as the next version of its name; the stored row."""
    problems = problems_of(manager, body)
    if problems:
        raise DefinitionInvalid(
            f"the definition has {len(problems)} problem{'s' if len(problems) > 1 else ''}: "
            + "; ".join(f"{p['where']}: {p['message']}" for p in problems[:5]),
            details={"problems": problems},
        )
    clean = {
        "name": body["name"],
        "description": body.get("description") or "",
        "input_schema": dict(body["input_schema"]),
        "steps": [
            {
                "name": s["name"],
                "action": s["action"],
                "params": dict(s.get("params") or {}),
                "after": list(s.get("after") or []),
                **({"when": dict(s["when"])} if s.get("when") else {}),
            }
            for s in body["steps"]
        ],
    }
    return store.save(manager.engine, clean)


def actions_json() -> list[dict[str, Any]]:
    return [a.as_json() for a in all_actions()]


def describe_type(workflow: Any) -> dict[str, Any]:
    """A designed workflow as ``workflow-types`` lists it (the same fields as code-defined)."""
    return {
        "name": workflow.name,
        "description": workflow.description,
        "steps": [
            {
                "name": s.name,
                "position": s.position,
                "transactional": False,
                "after": list(s.after),
                "kind": s.kind.value,
                "signal": s.signal,
                "conditional": s.when is not None,
                "compensates": None,
            }
            for s in workflow.steps
        ],
        "signals": list(workflow.signals),
        "input_schema": dict(workflow.input_schema.json_schema),
    }


def designed_types(manager: WorkflowManager) -> list[dict[str, Any]]:
    source = manager.registry.source
    if not isinstance(source, store.StoredDefinitions):
        return []
    code = {w.name for w in manager.registry}
    return [describe_type(w) for w in source.all_latest() if w.name not in code]
