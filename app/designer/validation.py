"""Every problem of a definition, each named, before it is stored.

A problem is ``{"where", "code", "message"}``; ``where`` is a path into the
definition (``steps.mail.params.to``, ``name``). The checks: the name (valid,
not reserved, not a code-defined workflow's), the input schema (a JSON Schema
object), each step (unique valid name, known action, params against the
action's schema, predecessors that exist, no cycles), every template and
condition path (an input field the schema declares, or an output field of a
step that surely ran before), and literal ``http_request`` URLs (an allowed
host).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import jsonschema

from app.designer import conditions
from app.designer.actions import all_actions, find_action, host_allowed
from app.designer.templates import PATH, is_template, paths_in
from app.engine.definition import NAME_PATTERN
from app.engine.serialize import find_nul
from app.settings import Settings

RESERVED_NAMES = frozenset({"stepwise", "bulk"})
MAX_STEPS = 100

Problem = dict[str, str]


def _problem(where: str, code: str, message: str) -> Problem:
    return {"where": where, "code": code, "message": message}


def _cycles(graph: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Each cycle of the predecessor graph once, as the steps on it."""
    found: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):]
                if frozenset(cycle) not in seen_sets:
                    seen_sets.add(frozenset(cycle))
                    found.append(list(cycle))
            elif state.get(nxt) is None:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in graph:
        if state.get(node) is None:
            visit(node)
    return found


def _ancestors(graph: Mapping[str, tuple[str, ...]], step: str) -> set[str]:
    out: set[str] = set()
    todo = list(graph.get(step, ()))
    while todo:
        node = todo.pop()
        if node in out or node not in graph:
            continue
        out.add(node)
        todo.extend(graph[node])
    return out


def _check_path(
    path: str, where: str, *, fields: Collection[str], outputs: Mapping[str, tuple[str, ...] | None],
    before: set[str], step_names: Collection[str],
) -> Problem | None:
    if not PATH.match(path):
        return _problem(where, "bad_template",
                        f"{{{{ {path} }}}} is not a path: use input.<field> or steps.<step>.<field>")
    parts = path.split(".")
    if parts[0] == "input":
        if parts[1] not in fields:
            return _problem(where, "unknown_input_field",
                            f"{path}: the input schema declares no field {parts[1]!r}")
        return None
    if len(parts) < 3:
        return _problem(where, "bad_template", f"{path}: name a field of the step's output")
    step, field = parts[1], parts[2]
    if step not in step_names:
        return _problem(where, "unknown_step", f"{path}: there is no step {step!r}")
    if step not in before:
        return _problem(where, "step_not_before",
                        f"{path}: step {step!r} does not come before this one (add it to after)")
    declared = outputs.get(step)
    if declared is not None and field not in declared:
        return _problem(where, "unknown_output_field",
                        f"{path}: step {step!r} has no output field {field!r} "
                        f"(it has: {', '.join(declared)})")
    return None


def validate(body: Mapping[str, Any], *, code_workflows: Collection[str],
             settings: Settings) -> list[Problem]:
    nul = find_nul(dict(body), "definition")
    if nul is not None:
        return [_problem(nul, "nul_character", "NUL characters (\\u0000) cannot be stored")]
    problems: list[Problem] = []
    name = body.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append(_problem("name", "bad_name",
                                 "use lower-case letters, digits and underscores, "
                                 "starting with a letter (at most 63)"))
    elif name in RESERVED_NAMES:
        problems.append(_problem("name", "reserved_name", f"{name!r} is reserved"))
    elif name in code_workflows:
        problems.append(_problem("name", "name_taken",
                                 f"{name!r} is a code-defined workflow; choose another name"))
    if not isinstance(body.get("description", ""), str):
        problems.append(_problem("description", "bad_description", "must be a string"))

    schema = body.get("input_schema")
    fields: Collection[str] = ()
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        problems.append(_problem("input_schema", "bad_input_schema",
                                 'must be a JSON Schema object: {"type": "object", "properties": ...}'))
    else:
        try:
            jsonschema.Draft7Validator.check_schema(dict(schema))
        except jsonschema.SchemaError as exc:
            problems.append(_problem("input_schema", "bad_input_schema", exc.message))
        properties = schema.get("properties") or {}
        fields = list(properties) if isinstance(properties, Mapping) else ()

    steps = body.get("steps")
    if not isinstance(steps, list) or not steps:
        problems.append(_problem("steps", "no_steps", "a workflow needs at least one step"))
        return problems
    if len(steps) > MAX_STEPS:
        problems.append(_problem("steps", "too_many_steps", f"at most {MAX_STEPS} steps"))
        return problems

    graph: dict[str, tuple[str, ...]] = {}
    outputs: dict[str, tuple[str, ...] | None] = {}
    good: list[tuple[str, Mapping[str, Any]]] = []
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            problems.append(_problem(f"steps[{index}]", "bad_step", "each step is an object"))
            continue
        step_name = step.get("name")
        label = f"steps.{step_name}" if isinstance(step_name, str) else f"steps[{index}]"
        if not isinstance(step_name, str) or not NAME_PATTERN.match(step_name):
            problems.append(_problem(f"{label}.name", "bad_step_name",
                                     "use lower-case letters, digits and underscores"))
            continue
        if step_name in graph:
            problems.append(_problem(f"{label}.name", "duplicate_step",
                                     f"two steps are named {step_name!r}"))
            continue
        unknown_keys = sorted(set(step) - {"name", "action", "params", "after", "when"})
        if unknown_keys:
            problems.append(_problem(label, "unknown_keys",
                                     f"unknown keys: {', '.join(unknown_keys)}"))
        after = step.get("after") or []
        if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
            problems.append(_problem(f"{label}.after", "bad_after", "a list of step names"))
            after = []
        graph[step_name] = tuple(after)
        action = find_action(step.get("action"))
        outputs[step_name] = action.outputs if action is not None else None
        if action is None:
            problems.append(_problem(f"{label}.action", "unknown_action",
                                     f"no action {step.get('action')!r} "
                                     f"(one of: {', '.join(a.name for a in all_actions())})"))
            continue
        params = step.get("params") if step.get("params") is not None else {}
        if not isinstance(params, Mapping):
            problems.append(_problem(f"{label}.params", "bad_params", "must be an object"))
            continue
        for error in jsonschema.Draft7Validator(action.params).iter_errors(dict(params)):
            at = ".".join(str(p) for p in error.absolute_path)
            problems.append(_problem(f"{label}.params" + (f".{at}" if at else ""),
                                     "bad_params", error.message))
        good.append((step_name, step))

    for step_name, after in graph.items():
        for predecessor in after:
            if predecessor == step_name:
                problems.append(_problem(f"steps.{step_name}.after", "cyclic_after",
                                         "a step cannot come after itself"))
            elif predecessor not in graph:
                problems.append(_problem(f"steps.{step_name}.after", "unknown_after",
                                         f"no step {predecessor!r}"))
    for cycle in _cycles(graph):
        if len(cycle) > 1:
            problems.append(_problem(f"steps.{cycle[0]}.after", "cyclic_after",
                                     "the steps come after each other in a circle: "
                                     + " → ".join([*cycle, cycle[0]])))

    for step_name, step in good:
        before = _ancestors(graph, step_name)
        check = dict(fields=fields, outputs=outputs, before=before, step_names=list(graph))
        params = step.get("params") or {}
        for key, value in params.items():
            for path in paths_in(value):
                found = _check_path(path, f"steps.{step_name}.params.{key}", **check)  # type: ignore[arg-type]
                if found:
                    problems.append(found)
        when = step.get("when")
        if when is not None:
            shape = conditions.problems(when)
            problems.extend(_problem(f"steps.{step_name}.when", "bad_condition", m) for m in shape)
            if not shape:
                found = _check_path(str(when["path"]), f"steps.{step_name}.when", **check)  # type: ignore[arg-type]
                if found:
                    problems.append(found)
        url = params.get("url")
        if step.get("action") == "http_request" and isinstance(url, str) and not is_template(url) \
                and not host_allowed(url, settings):
            problems.append(_problem(f"steps.{step_name}.params.url", "host_not_allowed",
                                     "the host is not in HTTP_ACTION_ALLOWED_HOSTS"))
    return problems
