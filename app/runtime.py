"""Process-wide wiring: settings → registry → ``WorkflowManager``.

The web app, the worker, beat and the CLI all build their manager here, so
they agree on workflows, retry defaults and recovery limits. Messages go out
through ``app.messaging`` (a send-only Celery client); a worker swaps in its
own Celery app. Nothing here imports ``workers``: building the worker's app is
never a side effect of importing the web app.
"""

from __future__ import annotations

from app.engine.db import get_engine
from app.engine.manager import Dispatch, WorkflowManager
from app.engine.notify import Listener
from app.engine.notify import get_listener as listener_for
from app.engine.registry import registry
from app.engine.retry import RetryPolicy
from app.engine.timing import max_countdown
from app.settings import Settings, get_settings

_managers: dict[int, WorkflowManager] = {}


def default_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.workflow_retry_attempts,
        initial_delay=settings.workflow_retry_delay,
        max_delay=settings.workflow_retry_max_delay,
    )


def heartbeat_interval(settings: Settings) -> float:
    """How often a worker tells Postgres it lives (and which steps it has)."""
    return max(settings.workflow_recovery_interval, 5.0)


def load_workflows(settings: Settings | None = None) -> None:
    registry.load((settings or get_settings()).workflow_modules)


def build_manager(settings: Settings, dispatch: Dispatch | None = None) -> WorkflowManager:
    from app.designer.store import StoredDefinitions

    load_workflows(settings)
    engine = get_engine(settings.database_url)
    # designed workflows (DESIGN §14), resolved from Postgres by name and version
    registry.set_source(StoredDefinitions(engine))
    return WorkflowManager(
        engine,
        registry,
        default_policy=default_policy(settings),
        default_step_timeout=settings.workflow_step_timeout,
        recovery_grace=settings.workflow_recovery_grace,
        recovery_limit=settings.workflow_recovery_limit,
        max_countdown=max_countdown(settings.celery_visibility_timeout),
        worker_ttl=3 * heartbeat_interval(settings),
        dispatch=dispatch,
    )


def get_manager() -> WorkflowManager:
    """This process's manager for the current settings, with the Celery dispatcher."""
    settings = get_settings()
    key = id(settings)
    manager = _managers.get(key)
    if manager is None:
        from app.messaging import client_app, make_dispatch

        manager = build_manager(settings)
        manager.set_dispatch(make_dispatch(client_app(settings), registry))
        _managers.clear()
        _managers[key] = manager
    return manager


def get_listener() -> Listener:
    """This process's run listener, bounded by ``WEB_MAX_WAITERS`` (it connects on first use)."""
    return listener_for(get_manager().engine, max_waiters=get_settings().web_max_waiters)
