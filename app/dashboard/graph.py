"""Lay a step graph out in columns for the dashboard. Pure: no Flask, no I/O.

Column n holds the steps whose longest chain of predecessors is n long, so
parallel branches stand side by side in one column and a join sits in the
column after its last predecessor. Compensation steps are not part of the
forward graph; they are listed apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _get(step: Any, key: str) -> Any:
    if isinstance(step, Mapping):
        return step.get(key)
    value = getattr(step, key, None)
    return getattr(value, "value", value)  # enums (StepKind) as their words


def columns(steps: Sequence[Any]) -> list[list[Any]]:
    """The forward steps in columns, each in declaration order."""
    forward = [s for s in steps if _get(s, "kind") != "compensation"]
    by_name = {_get(s, "name"): s for s in forward}
    depth: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in depth:
            return depth[name]
        if name in seen:  # a graph from the database is trusted, but never loop
            return 0
        preds = [p for p in (_get(by_name[name], "after") or []) if p in by_name]
        depth[name] = 1 + max((level(p, seen | {name}) for p in preds), default=-1)
        return depth[name]

    for name in by_name:
        level(name)
    out: list[list[Any]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for s in forward:
        out[depth[_get(s, "name")]].append(s)
    return out


def compensations(steps: Sequence[Any]) -> list[Any]:
    return [s for s in steps if _get(s, "kind") == "compensation"]
