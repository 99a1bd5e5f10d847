"""A step's condition (``when``) as data: ``{"path": ..., "equals"|"not_equals"|"exists": ...}``.

The path is a template path (``steps.wait.timed_out``, ``input.plan``); the
condition is evaluated when the step becomes ready, and false skips the step
(DESIGN §10). It is never code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from app.designer.templates import PATH, lookup
from app.engine.definition import StepContext

OPERATORS = ("equals", "not_equals", "exists")


def problems(when: Any) -> list[str]:
    """What is wrong with a condition's shape (its path's targets are checked elsewhere)."""
    if not isinstance(when, Mapping):
        return ['must be an object like {"path": "steps.wait.timed_out", "equals": true}']
    found = []
    path = when.get("path")
    if not isinstance(path, str) or not PATH.match(path):
        found.append("path must be input.<field> or steps.<step>.<field>")
    operators = [op for op in OPERATORS if op in when]
    if len(operators) != 1:
        found.append(f"needs exactly one of {', '.join(OPERATORS)}")
    unknown = sorted(set(when) - {"path", *OPERATORS})
    if unknown:
        found.append(f"unknown keys: {', '.join(unknown)}")
    if "exists" in when and not isinstance(when["exists"], bool):
        found.append("exists must be true or false")
    return found


def holds(when: Mapping[str, Any], scope: Mapping[str, Any]) -> bool:
    value = lookup(str(when["path"]), scope)
    if "exists" in when:
        return (value is not None) is bool(when["exists"])
    if "equals" in when:
        return bool(value == when["equals"])
    return bool(value != when["not_equals"])


def scope_of(ctx: StepContext) -> dict[str, Any]:
    return {"input": dict(ctx.input), "steps": dict(ctx.outputs)}


def predicate(when: Mapping[str, Any]) -> Callable[[StepContext], bool]:
    def check(ctx: StepContext) -> bool:
        return holds(when, scope_of(ctx))

    return check
