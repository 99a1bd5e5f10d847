"""How a workflow is declared: a name, an input schema, and ordered steps.

    orders = Workflow("order", input_schema=OrderInput, retry=RetryPolicy(max_attempts=5))

    @orders.step(transactional=True)
    def reserve_stock(ctx: StepContext, session: Session) -> dict: ...

    @orders.step(timeout=20, non_retryable=(CardDeclined,))
    def charge(ctx: StepContext) -> dict: ...

Mistakes are caught at import time with a ``DefinitionError`` naming the
workflow and the step, not when the first run reaches them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import marshmallow

from app.engine.errors import DefinitionError
from app.engine.retry import RetryPolicy

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
StepFunction = Callable[..., Any]


@dataclass(frozen=True)
class StepContext:
    """What a step function is given. It never touches status columns."""

    run_id: uuid.UUID
    workflow: str
    step: str
    position: int
    attempt: int
    input: Mapping[str, Any]
    outputs: Mapping[str, Any]

    @property
    def idempotency_key(self) -> str:
        """Stable across attempts and redeliveries: pass it to APIs that accept one."""
        return f"{self.run_id}:{self.step}"


@dataclass(frozen=True)
class StepDefinition:
    workflow: str
    name: str
    position: int
    function: StepFunction
    transactional: bool = False
    timeout: float | None = None
    retry: Mapping[str, Any] = field(default_factory=dict)

    @property
    def task_name(self) -> str:
        return f"{self.workflow}.{self.name}"


class Workflow:
    """A named, ordered list of steps with an input schema and a retry policy.

    Creating one registers it in the process registry (``app.engine.registry``);
    ``freeze()`` is called once every workflow module is imported, after which
    adding a step is an error.
    """

    def __init__(
        self,
        name: str,
        *,
        input_schema: type[marshmallow.Schema] | marshmallow.Schema,
        retry: RetryPolicy | None = None,
        step_timeout: float | None = None,
        description: str = "",
        register: bool = True,
    ) -> None:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise DefinitionError(
                f"workflow name {name!r} is not valid: use lower-case letters, digits and "
                "underscores, starting with a letter (it becomes part of Celery task names)"
            )
        schema = input_schema() if isinstance(input_schema, type) else input_schema
        if not isinstance(schema, marshmallow.Schema):
            raise DefinitionError(
                f"workflow {name!r}: input_schema must be a marshmallow Schema class or "
                f"instance, got {input_schema!r}"
            )
        if step_timeout is not None and step_timeout <= 0:
            raise DefinitionError(f"workflow {name!r}: step_timeout must be positive")
        self.name = name
        self.input_schema = schema
        self.retry = retry
        self.step_timeout = step_timeout
        self.description = description
        self.steps: list[StepDefinition] = []
        self.frozen = False
        if register:
            from app.engine.registry import registry

            registry.add(self)

    def step(
        self,
        name: str | None = None,
        *,
        transactional: bool = False,
        timeout: float | None = None,
        max_attempts: int | None = None,
        initial_delay: float | None = None,
        retryable: tuple[type[BaseException], ...] | None = None,
        non_retryable: tuple[type[BaseException], ...] | None = None,
    ) -> Callable[[StepFunction], StepFunction]:
        """Declare the next step. Order of declaration is order of execution."""

        def decorate(function: StepFunction) -> StepFunction:
            step_name: str = name or str(getattr(function, "__name__", ""))
            where = f"workflow {self.name!r}, step {step_name!r}"
            if self.frozen:
                raise DefinitionError(f"{where}: workflow is frozen; steps cannot be added")
            if not NAME_PATTERN.match(step_name or ""):
                raise DefinitionError(
                    f"{where}: not a valid step name (lower-case letters, digits, underscores)"
                )
            if any(s.name == step_name for s in self.steps):
                raise DefinitionError(f"{where}: duplicate step name")
            if timeout is not None and timeout <= 0:
                raise DefinitionError(f"{where}: timeout must be positive")
            for label, types in (("retryable", retryable), ("non_retryable", non_retryable)):
                if types is not None and not all(
                    isinstance(t, type) and issubclass(t, BaseException) for t in types
                ):
                    raise DefinitionError(f"{where}: {label} must be a tuple of exception types")
            overrides = {
                "max_attempts": max_attempts,
                "initial_delay": initial_delay,
                "retryable": retryable,
                "non_retryable": (
                    None
                    if non_retryable is None
                    else tuple(non_retryable) + RetryPolicy().non_retryable
                ),
            }
            self.steps.append(
                StepDefinition(
                    workflow=self.name,
                    name=step_name,
                    position=len(self.steps),
                    function=function,
                    transactional=transactional,
                    timeout=timeout,
                    retry={k: v for k, v in overrides.items() if v is not None},
                )
            )
            return function

        return decorate

    def freeze(self) -> None:
        if not self.steps:
            raise DefinitionError(f"workflow {self.name!r} has no steps")
        self.frozen = True

    def step_at(self, position: int) -> StepDefinition | None:
        return self.steps[position] if 0 <= position < len(self.steps) else None

    def policy_for(self, step: StepDefinition, default: RetryPolicy) -> RetryPolicy:
        """Deployment default, then the workflow's policy, then the step's overrides."""
        base = self.retry or default
        return base.merged(**step.retry) if step.retry else base

    def timeout_for(self, step: StepDefinition, default: float) -> float:
        return step.timeout or self.step_timeout or default

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, steps={[s.name for s in self.steps]})"
