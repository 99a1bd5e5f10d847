"""``flask --app app workflows list|show|retry|cancel|recover``: the operator's CLI.

The same ``WorkflowManager`` as the API and the workers, so the same state
machine decides: retrying a run that is not failed or cancelled is refused
exactly as ``POST .../retry`` would refuse it (exit status 1, the error code).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from app.api.schemas import RunSchema
from app.engine.errors import StepwiseError
from app.engine.manager import WorkflowManager
from app.engine.states import RunStatus

workflows = AppGroup("workflows", help="List, inspect, retry, cancel and recover workflow runs.")


def _manager() -> WorkflowManager:
    manager: WorkflowManager = current_app.extensions["stepwise_manager"]
    return manager


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, sort_keys=False)


def _guarded(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except StepwiseError as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from None


@workflows.command("list")
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), default=None)
@click.option("--name", default=None, help="Only runs of this workflow.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--cursor", default=None, help="next_cursor of an earlier page.")
def list_runs(status: str | None, name: str | None, limit: int, cursor: str | None) -> None:
    """Runs, newest first."""
    items, next_cursor = _guarded(
        lambda: _manager().list(status=status, name=name, limit=limit, cursor=cursor)
    )
    click.echo(f"{'ID':36}  {'WORKFLOW':16}  {'STATUS':9}  {'CREATED':25}  FINISHED")
    for run in items:
        click.echo(
            f"{run['id']!s:36}  {run['name']:16}  {run['status']:9}  "
            f"{_when(run['created_at']):25}  {_when(run['finished_at'])}"
        )
    if next_cursor:
        click.echo(f"next page: --cursor {next_cursor}")


@workflows.command("show")
@click.argument("run_id")
def show(run_id: str) -> None:
    """One run with its steps and every attempt, as the API's JSON (ISO times)."""
    run = _guarded(lambda: _manager().get(run_id))
    click.echo(_json(RunSchema().dump(run)))


@workflows.command("retry")
@click.argument("run_id")
def retry(run_id: str) -> None:
    """Resume a failed or cancelled run from its first unfinished step."""
    run = _guarded(lambda: _manager().retry(run_id))
    click.echo(f"{run['id']} {run['status']}")


@workflows.command("cancel")
@click.argument("run_id")
def cancel(run_id: str) -> None:
    """Cancel a pending or running run; a running step may finish, no later step starts."""
    run = _guarded(lambda: _manager().cancel(run_id))
    click.echo(f"{run['id']} {run['status']}")


@workflows.command("recover")
def recover() -> None:
    """Run the recovery sweep once, now (beat runs it every WORKFLOW_RECOVERY_INTERVAL)."""
    report = _guarded(lambda: _manager().recover())
    click.echo(
        f"resent={len(report.resent)} dead_lettered={len(report.dead_lettered)} "
        f"woken={len(report.woken)} finished={len(report.finished)} "
        f"waiting_for_worker={len(report.waiting_for_worker)}"
    )
    for run_id in report.resent:
        click.echo(f"resent {run_id}")
    for run_id in report.dead_lettered:
        click.echo(f"dead-lettered {run_id}")
