"""String templates over a run's input and its earlier steps' outputs: path lookups, never code.

``"{{ input.email }}"`` alone in a string is replaced by the value itself (a
number stays a number); inside other text it is replaced by its text form.
A path is ``input.<field>[.<field>...]`` or ``steps.<step>.<field>[...]``;
nothing else is looked up, so a definition cannot read settings or secrets.
A missing value renders as null (alone) or as nothing (inside text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

TEMPLATE = re.compile(r"\{\{([^{}]*)\}\}")
PATH = re.compile(r"^(input|steps)(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def paths_in(value: Any) -> Iterator[str]:
    """Every template expression in ``value`` (strings inside lists and objects too), stripped."""
    if isinstance(value, str):
        for match in TEMPLATE.finditer(value):
            yield match.group(1).strip()
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from paths_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from paths_in(item)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and TEMPLATE.search(value) is not None


def lookup(path: str, scope: Mapping[str, Any]) -> Any:
    """Follow a dotted path through plain mappings; None where it leads nowhere."""
    current: Any = scope
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """``value`` with every template replaced from ``scope`` (``{"input": ..., "steps": ...}``)."""
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value.strip())
        if whole is not None:
            return lookup(whole.group(1).strip(), scope)
        return TEMPLATE.sub(lambda m: _text(lookup(m.group(1).strip(), scope)), value)
    if isinstance(value, Mapping):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    return value
