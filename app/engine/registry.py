"""The process's registry of workflow definitions.

Both the web app and the worker fill it the same way: importing the modules
listed in ``WORKFLOW_MODULES`` (each module's ``Workflow(...)`` registers
itself), then freezing every workflow.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from typing import Protocol

from app.engine.definition import Workflow
from app.engine.errors import DefinitionError, UnknownWorkflow


class DefinitionSource(Protocol):
    """Workflows defined at runtime (the designer's, stored in Postgres), by name and version.

    ``find(name)`` is the latest version, ``find(name, version)`` that one; a
    run is resolved with its own version, so a new version never changes it.
    """

    def find(self, name: str, version: int | None = None) -> Workflow | None: ...

    def is_defined(self, name: str) -> bool: ...


class Registry:
    """Code-defined workflows, and a hook (``set_source``) for runtime-defined ones.

    A code-defined workflow always wins over a stored one of the same name.
    Iterating yields code-defined workflows only: they are the ones a worker
    registers Celery tasks for at start.
    """

    def __init__(self) -> None:
        self._workflows: dict[str, Workflow] = {}
        self._source: DefinitionSource | None = None

    def set_source(self, source: DefinitionSource | None) -> None:
        self._source = source

    @property
    def source(self) -> DefinitionSource | None:
        return self._source

    def code(self, name: str) -> Workflow | None:
        """A code-defined workflow, never a stored one."""
        return self._workflows.get(name)

    def is_stored(self, name: str) -> bool:
        """Whether ``name`` is a runtime-defined (stored) workflow, not a code-defined one."""
        return name not in self._workflows and self._source is not None and (
            self._source.is_defined(name)
        )

    def add(self, workflow: Workflow) -> None:
        existing = self._workflows.get(workflow.name)
        if existing is not None and existing is not workflow:
            raise DefinitionError(f"workflow {workflow.name!r} is defined twice")
        self._workflows[workflow.name] = workflow

    def remove(self, name: str) -> None:
        self._workflows.pop(name, None)

    def get(self, name: str, version: int | None = None) -> Workflow:
        found = self.find(name, version)
        if found is None:
            raise UnknownWorkflow(f"no workflow named {name!r}")
        return found

    def find(self, name: str, version: int | None = None) -> Workflow | None:
        """The code-defined workflow, else the stored one (its latest, or ``version``)."""
        found = self._workflows.get(name)
        if found is None and self._source is not None:
            return self._source.find(name, version)
        return found

    def __iter__(self) -> Iterator[Workflow]:
        return iter(sorted(self._workflows.values(), key=lambda w: w.name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

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
