"""How a workflow is declared: a name, an input schema, and a graph of steps.

    orders = Workflow("order", input_schema=OrderInput, retry=RetryPolicy(max_attempts=5))

    @orders.step(transactional=True, compensate=release_stock)
    def reserve_stock(ctx: StepContext, session: Session) -> dict: ...

    @orders.step(timeout=20, non_retryable=(CardDeclined,))
    def charge(ctx: StepContext) -> dict: ...

A step follows the step declared before it unless it names its predecessors
(``after=``); steps whose predecessors are all done run in parallel. A step
may carry a condition (``when=``), and a workflow may hold durable waits:
``sleep`` and ``wait_for_signal``. Mistakes are caught when the workflow is
frozen at start-up, with a ``DefinitionError`` naming the workflow and the
step, not when the first run reaches them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import marshmallow

from app.engine.errors import DefinitionError
from app.engine.graph import check_graph
from app.engine.retry import RetryPolicy
from app.engine.states import StepKind

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
StepFunction = Callable[..., Any]
Condition = Callable[["StepContext"], Any]
# seconds from now, or an absolute time, possibly computed from the context
Duration = float | int | Callable[["StepContext"], "float | int | datetime"]


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
    created_at: datetime | None = None

    @property
    def idempotency_key(self) -> str:
        """Stable across attempts and redeliveries: pass it to APIs that accept one."""
        return f"{self.run_id}:{self.step}"


@dataclass(frozen=True)
class StepDefinition:
    workflow: str
    name: str
    position: int
    function: StepFunction | None = None
    kind: StepKind = StepKind.TASK
    after: tuple[str, ...] = ()
    when: Condition | None = None
    transactional: bool = False
    timeout: float | None = None
    retry: Mapping[str, Any] = field(default_factory=dict)
    # added to the workflow's own non-retryable list, never replacing it
    extra_non_retryable: tuple[type[BaseException], ...] = ()
    duration: Duration | None = None  # sleep: how long; signal wait: its timeout
    signal: str | None = None
    compensate: StepFunction | None = None
    compensates: str | None = None  # a compensation step: the step it undoes
    rate_limit: float | None = None  # starts per second, across every worker

    @property
    def limited(self) -> bool:
        return self.rate_limit is not None

    @property
    def task_name(self) -> str:
        return f"{self.workflow}.{self.name}"


def compensation_name(step: str) -> str:
    return f"undo_{step}"


class Workflow:
    """A named graph of steps with an input schema and a retry policy.

    Creating one registers it in the process registry (``app.engine.registry``);
    ``freeze()`` is called once every workflow module is imported: it checks
    the graph and then refuses new steps.
    """

    def __init__(
        self,
        name: str,
        *,
        input_schema: type[marshmallow.Schema] | marshmallow.Schema,
        retry: RetryPolicy | None = None,
        step_timeout: float | None = None,
        description: str = "",
        signals: Iterable[str] = (),
        result: Callable[[StepContext], Mapping[str, Any]] | None = None,
        max_concurrent_runs: int | None = None,
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
        declared: list[str] = []
        for signal in signals:
            if not isinstance(signal, str) or not NAME_PATTERN.match(signal):
                raise DefinitionError(f"workflow {name!r}: signal name {signal!r} is not valid")
            if signal in declared:
                raise DefinitionError(f"workflow {name!r}: signal {signal!r} is declared twice")
            declared.append(signal)
        if result is not None and not callable(result):
            raise DefinitionError(f"workflow {name!r}: result must be callable")
        if max_concurrent_runs is not None and (
            isinstance(max_concurrent_runs, bool)
            or not isinstance(max_concurrent_runs, int)
            or max_concurrent_runs < 1
        ):
            raise DefinitionError(
                f"workflow {name!r}: max_concurrent_runs must be a positive integer, "
                f"got {max_concurrent_runs!r}"
            )
        self.name = name
        self.input_schema = schema
        self.retry = retry
        self.step_timeout = step_timeout
        self.description = description
        self.signals: tuple[str, ...] = tuple(declared)
        self.result = result
        # how many of its runs may execute task steps at once (None: no cap)
        self.max_concurrent_runs = max_concurrent_runs
        self.steps: list[StepDefinition] = []
        self.frozen = False
        if register:
            from app.engine.registry import registry

            registry.add(self)

    # -- declaring steps -----------------------------------------------------

    def step(
        self,
        name: str | None = None,
        *,
        after: Sequence[str] | None = None,
        when: Condition | None = None,
        transactional: bool = False,
        timeout: float | None = None,
        max_attempts: int | None = None,
        initial_delay: float | None = None,
        retryable: tuple[type[BaseException], ...] | None = None,
        non_retryable: tuple[type[BaseException], ...] | None = None,
        compensate: StepFunction | None = None,
        rate_limit: float | None = None,
    ) -> Callable[[StepFunction], StepFunction]:
        """Declare a task step. Without ``after`` it follows the step declared before it.

        ``rate_limit`` caps the step's starts per second across all workers (a
        provider's limit); excess attempts wait as ``pending``, never dropped.
        """

        def decorate(function: StepFunction) -> StepFunction:
            step_name: str = name or str(getattr(function, "__name__", ""))
            where = self._where(step_name)
            if timeout is not None and timeout <= 0:
                raise DefinitionError(f"{where}: timeout must be positive")
            for label, types in (("retryable", retryable), ("non_retryable", non_retryable)):
                if types is not None and not all(
                    isinstance(t, type) and issubclass(t, BaseException) for t in types
                ):
                    raise DefinitionError(f"{where}: {label} must be a tuple of exception types")
            if compensate is not None and not callable(compensate):
                raise DefinitionError(f"{where}: compensate must be callable")
            if rate_limit is not None and (
                isinstance(rate_limit, bool)
                or not isinstance(rate_limit, int | float)
                or not 0 < rate_limit < float("inf")
            ):
                raise DefinitionError(
                    f"{where}: rate_limit must be a positive number of starts per second, "
                    f"got {rate_limit!r}"
                )
            overrides = {
                "max_attempts": max_attempts,
                "initial_delay": initial_delay,
                "retryable": retryable,
            }
            self._add(
                step_name,
                function=function,
                after=after,
                when=when,
                transactional=transactional,
                timeout=timeout,
                retry={k: v for k, v in overrides.items() if v is not None},
                extra_non_retryable=tuple(non_retryable or ()),
                compensate=compensate,
                rate_limit=None if rate_limit is None else float(rate_limit),
            )
            return function

        return decorate

    def sleep(
        self,
        name: str,
        *,
        seconds: Duration,
        after: Sequence[str] | None = None,
        when: Condition | None = None,
    ) -> None:
        """A durable sleep: ``waiting`` in Postgres until due, holding no worker slot.

        ``seconds`` is a number, or a function of the context returning seconds
        or an absolute time (computed once, when the step starts waiting).
        """
        self._check_duration(name, seconds, "seconds")
        self._add(name, kind=StepKind.SLEEP, after=after, when=when, duration=seconds)

    def wait_for_signal(
        self,
        name: str,
        *,
        signal: str,
        timeout: Duration | None = None,
        after: Sequence[str] | None = None,
        when: Condition | None = None,
    ) -> None:
        """Wait for ``signal`` (delivered over the API); its payload is the step's output.

        A signal delivered before the run gets here is kept and consumed on
        arrival. On timeout the step succeeds with ``{"timed_out": true}``.
        """
        where = self._where(name)
        if signal not in self.signals:
            raise DefinitionError(
                f"{where}: waits for signal {signal!r}, which the workflow does not declare "
                f"(declared: {', '.join(self.signals) or 'none'})"
            )
        if timeout is not None:
            self._check_duration(name, timeout, "timeout")
        self._add(
            name, kind=StepKind.SIGNAL, after=after, when=when, duration=timeout, signal=signal
        )

    # -- checks ----------------------------------------------------------------

    def _where(self, step: str) -> str:
        return f"workflow {self.name!r}, step {step!r}"

    def _check_duration(self, step: str, value: Any, label: str) -> None:
        if callable(value):
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise DefinitionError(
                f"{self._where(step)}: {label} must be a non-negative number of seconds or a "
                "function of the context"
            )

    def _add(self, step_name: str, *, after: Sequence[str] | None, **spec: Any) -> None:
        where = self._where(step_name)
        if self.frozen:
            raise DefinitionError(f"{where}: workflow is frozen; steps cannot be added")
        if not NAME_PATTERN.match(step_name or ""):
            raise DefinitionError(
                f"{where}: not a valid step name (lower-case letters, digits, underscores)"
            )
        if any(s.name == step_name for s in self.steps):
            raise DefinitionError(f"{where}: duplicate step name")
        when = spec.get("when")
        if when is not None and not callable(when):
            raise DefinitionError(f"{where}: the condition (when=) must be callable")
        if isinstance(after, str):
            after = [after]
        if after is None:
            predecessors: tuple[str, ...] = (self.steps[-1].name,) if self.steps else ()
        else:
            predecessors = tuple(after)
            if len(set(predecessors)) != len(predecessors):
                raise DefinitionError(f"{where}: a predecessor is named twice in after=")
            if step_name in predecessors:
                raise DefinitionError(f"{where}: a step cannot come after itself")
        self.steps.append(
            StepDefinition(
                workflow=self.name,
                name=step_name,
                position=len(self.steps),
                after=predecessors,
                **spec,
            )
        )

    def freeze(self) -> None:
        if self.frozen:
            return
        if not self.steps:
            raise DefinitionError(f"workflow {self.name!r} has no steps")
        check_graph(self.name, {s.name: s.after for s in self.steps})
        # each compensating function becomes a step of its own, outside the forward graph
        for step in list(self.steps):
            if step.compensate is None:
                continue
            undo = compensation_name(step.name)
            if any(s.name == undo for s in self.steps):
                raise DefinitionError(
                    f"{self._where(undo)}: the name is taken by the compensation of {step.name!r}"
                )
            self.steps.append(
                StepDefinition(
                    workflow=self.name,
                    name=undo,
                    position=len(self.steps),
                    function=step.compensate,
                    kind=StepKind.COMPENSATION,
                    compensates=step.name,
                    retry=step.retry,
                    timeout=step.timeout,
                )
            )
        self.frozen = True

    # -- lookups -------------------------------------------------------------

    def find_step(self, name: str) -> StepDefinition | None:
        return next((s for s in self.steps if s.name == name), None)

    def step_at(self, position: int) -> StepDefinition | None:
        return self.steps[position] if 0 <= position < len(self.steps) else None

    def continuation(self, first: str) -> list[str]:
        """``first`` and the steps after it that each wait for the one before alone.

        The straight stretch of the graph that can travel as one Celery chain.
        """
        names = [first]
        while True:
            dependents = [s for s in self.forward_steps if names[-1] in s.after]
            if len(dependents) != 1 or dependents[0].after != (names[-1],):
                return names
            if dependents[0].name in names:  # defensive: graphs are checked acyclic
                return names
            names.append(dependents[0].name)

    @property
    def forward_steps(self) -> list[StepDefinition]:
        return [s for s in self.steps if s.kind is not StepKind.COMPENSATION]

    def policy_for(self, step: StepDefinition, default: RetryPolicy) -> RetryPolicy:
        """Deployment default, then the workflow's policy, then the step's overrides.

        A step's ``non_retryable`` adds to the list it inherits.
        """
        base = self.retry or default
        policy = base.merged(**step.retry) if step.retry else base
        if step.extra_non_retryable:
            policy = policy.merged(
                non_retryable=tuple(step.extra_non_retryable) + policy.non_retryable
            )
        return policy

    def timeout_for(self, step: StepDefinition, default: float) -> float:
        return step.timeout or self.step_timeout or default

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, steps={[s.name for s in self.steps]})"
