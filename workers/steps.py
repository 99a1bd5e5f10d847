"""Step tasks: Celery's side of the step protocol (``app.engine.protocol``).

One Celery task per step, named ``<workflow>.<step>`` and routed to its own
queue; its body addresses the step by run id and **step name**, runs the
engine's protocol, and maps the decision onto Celery:

- continue → the steps Postgres made ready are sent (a linear stretch as one
  chain, as the start sends it); the message's own chain is never trusted;
- later → the same message again after a countdown (a retry, a countdown that
  came early, a claim that could not reach the database);
- stop → the chain is cut; nothing more for this message;
- failed → recorded, compensations sent, and ``StepFailed`` raised so Celery
  and Flower show the task as failed.

The task returns nothing: outputs live in Postgres, never in Celery's result
or in the task events Flower shows.
"""

from __future__ import annotations

import os
import secrets
import uuid
from typing import Any

import sqlalchemy as sa
import structlog
from celery import Celery, Task

from app.designer import DESIGNED_TASK
from app.engine.errors import NonRetryableError
from app.engine.models import runs
from app.engine.protocol import Action, Attempt, Decision, execute_step
from app.engine.registry import Registry
from app.engine.timing import hard_limit
from app.runtime import get_manager
from app.settings import get_settings

log = structlog.get_logger("stepwise.step")


class StepFailed(Exception):
    """Raised after a step's failure is recorded, so Celery and Flower show FAILURE."""


# This worker instance, drawn once in the main process (this module is imported
# before the pool forks, so its children share it). Node names are not unique —
# containers share hostnames, ``-n w@localhost`` runs on two hosts — so a lease
# names the instance too, and only a lease of this very instance whose process
# is gone counts as dead here.
INSTANCE = secrets.token_hex(6)


def _lease_owner(task: Task) -> str:
    # unique per delivery: a duplicated message carries the same task id
    return (
        f"{task.request.hostname}:{os.getpid()}:{INSTANCE}:{task.request.id}:"
        f"{secrets.token_hex(4)}"
    )


def holder_died_here(task: Task, holder: str | None) -> bool:
    """Whether the lease holder was a process of this worker instance that no longer exists."""
    if not holder:
        return False
    node, _, rest = holder.partition(":")
    pid_text, _, rest = rest.partition(":")
    instance = rest.partition(":")[0]
    if node != task.request.hostname or instance != INSTANCE or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _lineage(task: Task) -> tuple[str, str]:
    """(this task's id, its root id): what the next messages name as parent and root."""
    return str(task.request.id), str(task.request.root_id or task.request.id)


def run_step(task: Task, workflow_name: str, step_name: str, run_id_text: str) -> None:
    # every line written inside the step names it, Celery's own "succeeded in"
    # line included (bound here, cleared by ``StepTask.after_return``, rather
    # than by task_prerun/postrun handlers that Celery would call for every task)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        run_id=run_id_text, workflow=workflow_name, step=step_name, task_id=task.request.id
    )
    manager = get_manager()
    run_id = uuid.UUID(run_id_text)
    workflow = manager.registry.code(workflow_name)
    step = workflow.find_step(step_name) if workflow else None
    if workflow is None or step is None:
        # only workers that registered this step consume its queue; a message
        # that got here anyway is put back for one that has it
        log.warning("step not registered on this worker; sending it back")
        task.request.chain = None
        manager.send(run_id, workflow_name, [step_name])
        return None
    _attempt(task, manager, workflow, step, run_id)
    return None


def _attempt(task: Task, manager: Any, workflow: Any, step: Any, run_id: uuid.UUID) -> None:
    attempt = Attempt(
        workflow=workflow,
        step=step,
        run_id=run_id,
        owner=_lease_owner(task),
        timeout=manager.timeout_for(workflow, step),
        holder_died=lambda holder: holder_died_here(task, holder),
    )
    decision = execute_step(manager, attempt)
    _carry(task, manager, workflow.name, run_id, decision)


def run_designed_step(task: Task, run_id_text: str, step_name: str) -> None:
    """A step of a designed workflow: the run's own stored version says what it does.

    The run row names the workflow and the version it started with, so a
    version saved since never changes a run in flight.
    """
    manager = get_manager()
    try:
        run_id = uuid.UUID(run_id_text)
    except ValueError:
        log.warning("designed step message with a bad run id; dropped", run_id=run_id_text)
        return None
    with manager.engine.connect() as c:
        run = c.execute(
            sa.select(runs.c.name, runs.c.definition_version).where(runs.c.id == run_id)
        ).first()
    if run is None:
        log.warning("designed step of an unknown run; nothing to do", run_id=run_id_text)
        return None
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        run_id=run_id_text, workflow=run.name, step=step_name, task_id=task.request.id
    )
    workflow = manager.registry.find(run.name, run.definition_version)
    step = workflow.find_step(step_name) if workflow is not None else None
    if workflow is None or step is None:
        # only a definition that lost a step could lead here: the claim would find
        # no such row either, so there is nothing to run or to put back
        log.warning("designed step not in its stored definition", version=run.definition_version)
        return None
    _attempt(task, manager, workflow, step, run_id)
    return None


class StepTask(Task):  # type: ignore[misc]
    """The base of every step task: its log context ends with it.

    ``after_return`` runs after Celery has logged the task's outcome, so that
    line still names the run and the step; a task run next by this process
    (a sweep, another step) starts with no context of this one.
    """

    def after_return(self, *args: Any, **kwargs: Any) -> None:
        structlog.contextvars.clear_contextvars()


def step_task_options(timeout: float) -> dict[str, Any]:
    """What every step task is: acked after its checkpoint, redelivered when its worker
    dies, retried by the engine's policy (never Celery's own limit), time-limited."""
    return {
        "base": StepTask,
        "bind": True,
        "soft_time_limit": timeout,
        "time_limit": hard_limit(timeout),
        "acks_late": True,
        "reject_on_worker_lost": True,
        "ignore_result": True,
        "max_retries": None,
        "throws": (StepFailed, NonRetryableError),
        "typing": False,
    }


def register_designed_task(celery_app: Celery) -> str:
    """The one task every designed workflow's steps run through (``app.designer``)."""
    settings = get_settings()
    timeout = settings.workflow_step_timeout
    if DESIGNED_TASK not in celery_app.tasks:
        celery_app.task(name=DESIGNED_TASK, **step_task_options(timeout))(_designed_body)
    return DESIGNED_TASK


def _designed_body(task: Task, run_id: str, step: str) -> None:
    return run_designed_step(task, run_id, step)


def _carry(task: Task, manager: Any, workflow: str, run_id: uuid.UUID, decision: Decision) -> None:
    if decision.action is Action.LATER and not decision.parked:
        # same task, same chain: the rest of the workflow rides along
        raise task.retry(countdown=decision.delay, max_retries=None)
    # Postgres said what is ready: send exactly that (a linear stretch again as
    # one chain), never the rest of this message's chain, which may be stale.
    # Sent here rather than by Celery's canvas: the same message, for a
    # fraction of the CPU (``app.messaging.make_dispatch``).
    task.request.chain = None
    if decision.action is Action.CONTINUE:
        manager.send(run_id, workflow, list(decision.send), _lineage(task))
        return
    if decision.action is Action.FAILED:
        manager.send(run_id, workflow, list(decision.send), _lineage(task))
        error = decision.error or {}
        raise StepFailed(f"{error.get('type')}: {error.get('message')}")


def register_step_tasks(celery_app: Celery, registry: Registry) -> list[str]:
    """One Celery task per step, named ``<workflow>.<step>``, with its time limits."""
    settings = get_settings()
    names = []
    for workflow in registry:
        for step in workflow.steps:
            if step.task_name in celery_app.tasks:
                continue
            timeout = workflow.timeout_for(step, settings.workflow_step_timeout)
            celery_app.task(name=step.task_name, **step_task_options(timeout))(
                _make_body(workflow.name, step.name)
            )
            names.append(step.task_name)
    return names


def _make_body(workflow_name: str, step_name: str) -> Any:
    def body(task: Task, run_id: str) -> None:
        return run_step(task, workflow_name, step_name, run_id)

    body.__name__ = f"step_{workflow_name}_{step_name}"
    return body
