"""Pure checks and walks over a step graph (name → names of its predecessors).

Used when a workflow is frozen (unknown predecessors, cycles) and when a run is
forked (a step's ancestors). No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.engine.errors import DefinitionError


def check_graph(workflow: str, after: Mapping[str, Sequence[str]]) -> None:
    """Raise ``DefinitionError`` for an unknown predecessor or a cycle, naming the step."""
    for step, predecessors in after.items():
        for p in predecessors:
            if p not in after:
                raise DefinitionError(
                    f"workflow {workflow!r}, step {step!r}: unknown predecessor {p!r}"
                )
    state: dict[str, int] = {}  # 1: on the current path, 2: checked

    def visit(step: str, path: list[str]) -> None:
        if state.get(step) == 2:
            return
        if state.get(step) == 1:
            cycle = path[path.index(step):] + [step]
            raise DefinitionError(
                f"workflow {workflow!r}, step {step!r}: the steps form a cycle "
                f"({' -> '.join(reversed(cycle))})"
            )
        state[step] = 1
        for p in after[step]:
            visit(p, [*path, step])
        state[step] = 2

    for step in after:
        visit(step, [])


def ancestors(after: Mapping[str, Sequence[str]], step: str) -> set[str]:
    """Every step that ``step`` transitively waits for."""
    seen: set[str] = set()
    todo = list(after.get(step, ()))
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(after.get(current, ()))
    return seen
