"""The process's registry of workflow definitions.

Both the web app and the worker fill it the same way: importing the modules
listed in ``WORKFLOW_MODULES`` (each module's ``Workflow(...)`` registers
itself), then freezing every workflow.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator

from app.engine.definition import Workflow
from app.engine.errors import DefinitionError, UnknownWorkflow


class Registry:
    def __init__(self) -> None:
        self._workflows: dict[str, Workflow] = {}

    def add(self, workflow: Workflow) -> None:
        existing = self._workflows.get(workflow.name)
        if existing is not None and existing is not workflow:
            raise DefinitionError(f"workflow {workflow.name!r} is defined twice")
        self._workflows[workflow.name] = workflow

    def remove(self, name: str) -> None:
        self._workflows.pop(name, None)

    def get(self, name: str) -> Workflow:
        try:
            return self._workflows[name]
        except KeyError:
            raise UnknownWorkflow(f"no workflow named {name!r}") from None

    def find(self, name: str) -> Workflow | None:
        return self._workflows.get(name)

    def __iter__(self) -> Iterator[Workflow]:
        return iter(sorted(self._workflows.values(), key=lambda w: w.name))

    def __contains__(self, name: object) -> bool:
        return name in self._workflows

    def load(self, modules: Iterable[str]) -> None:
        """Import workflow modules and freeze what they declared."""
        for module in modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name and module.startswith(exc.name):
                    raise DefinitionError(
                        f"WORKFLOW_MODULES names {module!r}, which cannot be imported"
                    ) from exc
                raise
        for workflow in self._workflows.values():
            if not workflow.frozen:
                workflow.freeze()


registry = Registry()
