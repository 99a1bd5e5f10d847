"""Routes: runs list, one run, workflow types, sign-in. Thin: the manager
does the work, pure helpers shape the data, templates draw it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from app import json_vetting
from app.dashboard import DashboardConfig, auth, dashboard
from app.dashboard.bulk_views import bulk_offer
from app.dashboard.filters import FILTER_ARGS, STATUSES, read_filters
from app.dashboard.formatting import run_duration, time_ago
from app.dashboard.graph import columns
from app.dashboard.live import render_page
from app.dashboard.schema_form import describe, form_problems, payload_from_form
from app.dashboard.timeline import build_timeline
from app.engine.errors import (
    IdempotencyConflict,
    IllegalTransition,
    InvalidInput,
    RunNotFound,
    UnknownWorkflow,
)
from app.engine.manager import WorkflowManager
from app.engine.models import runs as runs_table
from app.engine.states import ACTIVE_RUN_STATUSES, can_cancel, can_retry

PAGE_SIZE = 50
# the column's own limit: a longer key could never be stored, nor found
KEY_LENGTH: int = runs_table.c.idempotency_key.type.length
ACTIVE = frozenset(s.value for s in ACTIVE_RUN_STATUSES)


def _manager() -> WorkflowManager:
    manager: WorkflowManager = current_app.extensions["stepwise_manager"]
    return manager


def _config() -> DashboardConfig:
    config: DashboardConfig = current_app.extensions["stepwise_dashboard"]
    return config


@dashboard.app_context_processor
def _globals() -> dict[str, Any]:
    return {
        "csrf_token": auth.csrf_token,
        "csrf_field": auth.CSRF_FIELD,
        "auth_required": auth.auth_required,
        "flower_url": _config().flower_url,
        "graph_columns": columns,
    }


# -- runs list ---------------------------------------------------------------


@dashboard.get("/")
def runs() -> str | Response:
    manager = _manager()
    chosen = read_filters(request.args)
    for problem in chosen.problems:
        flash(problem, "error")
    if any(not request.args[k].strip() for k in FILTER_ARGS if k in request.args):
        # the filter form sends its empty fields too: answer with the tidy URL
        return redirect(url_for("dashboard.runs", **chosen.args))
    query = chosen.args.get("q", "")
    if _is_uuid(query):  # a whole run id: open that run
        try:
            return redirect(url_for("dashboard.run", run_id=manager.get(query)["id"]))
        except RunNotFound:
            pass
    cursor = _text_arg("cursor")
    try:
        items, next_cursor = manager.list(
            limit=PAGE_SIZE, cursor=cursor, filters=chosen.filters
        )
    except InvalidInput:
        flash("That page link is no longer valid; showing the newest runs.", "error")
        return redirect(url_for("dashboard.runs", **chosen.args))
    # a search that the other filters hid: say where it would find runs
    search_everywhere = None
    if not items and query and len(chosen.args) > 1:
        alone = read_filters({"q": query}).filters
        if manager.list(limit=1, filters=alone)[0]:
            search_everywhere = url_for("dashboard.runs", q=query)
    now = datetime.now(UTC)
    counts = _config().counter.counts(chosen.filters)
    status = chosen.filters.status
    # follow only the newest page (paging through history must not move under the
    # reader), and there even when all is quiet: a new run may start at any time
    live = cursor is None and not query
    return render_page(
        "runs.html",
        items=[
            {**r, "duration": run_duration(r, now), "ago": time_ago(r["created_at"], now)}
            for r in items
        ],
        counts=counts,
        statuses=STATUSES,
        workflows=[w.name for w in manager.registry],
        chosen=chosen,
        status=status,
        workflow=chosen.filters.name,
        query=query,
        cursor=cursor,
        next_cursor=next_cursor,
        live=live,
        bulk=bulk_offer(chosen, counts),
        search_everywhere=search_everywhere,
    )


def _text_arg(name: str) -> str | None:
    """A query-string filter, or None for one no run can match (a NUL character)."""
    value = request.args.get(name) or None
    return None if value is None or "\x00" in value else value


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# -- one run -------------------------------------------------------------------


@dashboard.get("/runs/<run_id>")
def run(run_id: str) -> str:
    manager = _manager()
    found = manager.get(run_id)
    now = datetime.now(UTC)
    failed = [s for s in found["steps"] if s["status"] == "failed"]
    return render_page(
        "run.html",
        run=found,
        duration=run_duration(found, now),
        timeline=build_timeline(found, now),
        step_durations={
            s["position"]: (
                (s["finished_at"] - s["started_at"]).total_seconds()
                if s["started_at"] and s["finished_at"] and s["finished_at"] >= s["started_at"]
                else None
            )
            for s in found["steps"]
        },
        failed_step=failed[0]["name"] if failed else None,
        can_retry=can_retry(found["status"]),
        can_cancel=can_cancel(found["status"]),
        live=found["status"] in ACTIVE,
        known_workflow=found["name"] in manager.registry,
        signals=_signals_of(manager, found["name"]),
    )


def _signals_of(manager: WorkflowManager, name: str) -> tuple[str, ...]:
    workflow = manager.registry.find(name)
    return workflow.signals if workflow is not None else ()


@dashboard.post("/runs/<run_id>/fork")
def fork(run_id: str) -> Response:
    """"Fork from here" on a step's row: a new run that reuses the outputs before it."""
    step = (request.form.get("step") or "").strip()
    try:
        forked = _manager().fork(run_id, step)
    except (IllegalTransition, InvalidInput) as exc:
        flash(f"Not forked: {exc.message}.", "error")
        return redirect(url_for("dashboard.run", run_id=run_id))
    flash(f"Forked from step {step}: this run reuses the outputs before it.", "ok")
    return redirect(url_for("dashboard.run", run_id=forked["id"]))


@dashboard.post("/runs/<run_id>/signal")
def signal(run_id: str) -> Response:
    """Send a signal from the run page (the same delivery as the API's)."""
    name = (request.form.get("signal") or "").strip()
    raw = request.form.get("payload") or "{}"
    try:
        payload = json.loads(raw)
    except ValueError:
        flash("Not sent: the payload is not valid JSON.", "error")
        return redirect(url_for("dashboard.run", run_id=run_id))
    if not isinstance(payload, dict):
        flash("Not sent: the payload must be a JSON object.", "error")
        return redirect(url_for("dashboard.run", run_id=run_id))
    try:
        _manager().signal(run_id, name, payload)
        flash(f"Signal {name} delivered.", "ok")
    except (IllegalTransition, InvalidInput) as exc:
        flash(f"Not sent: {exc.message}.", "error")
    return redirect(url_for("dashboard.run", run_id=run_id))


@dashboard.post("/runs/<run_id>/retry")
def retry(run_id: str) -> Response:
    try:
        _manager().retry(run_id)
        flash("Retry requested: the run resumes from its first unfinished step.", "ok")
    except IllegalTransition as exc:
        flash(f"Not retried: {exc.message}.", "error")
    return redirect(url_for("dashboard.run", run_id=run_id))


@dashboard.post("/runs/<run_id>/cancel")
def cancel(run_id: str) -> Response:
    try:
        _manager().cancel(run_id)
        flash("Run cancelled: a step already running may finish; no later step starts.", "ok")
    except IllegalTransition as exc:
        flash(f"Not cancelled: {exc.message}.", "error")
    return redirect(url_for("dashboard.run", run_id=run_id))


# -- workflow types ------------------------------------------------------------


def _workflow_types(
    only: str | None = None,
    errors: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    registered = list(_manager().registry)
    shown = [w for w in registered if only in (None, w.name)]
    if only is not None and not shown:
        abort(404, f"No workflow named {only!r}.")
    page = render_template(
        "workflow_types.html",
        names=[w.name for w in registered],
        only=only,
        types=[{"workflow": w, "fields": describe(w.input_schema)} for w in shown],
        errors=errors or {},
        values=values or {},
    )
    return page, status


@dashboard.get("/workflow-types")
def workflow_types() -> tuple[str, int]:
    """Every registered workflow, or one with ``?workflow=name``."""
    return _workflow_types(request.args.get("workflow") or None)


@dashboard.post("/workflow-types/<name>/start")
def start(name: str) -> Response | tuple[str, int]:
    manager = _manager()
    try:
        workflow = manager.workflow(name)
    except UnknownWorkflow:
        abort(404, f"No workflow named {name!r}.")
    specs = describe(workflow.input_schema)
    key = request.form.get("idempotency_key", "").strip() or None
    values = {name: dict(request.form)}
    refused = form_problems(specs, request.form)
    if key is not None and len(key) > KEY_LENGTH:
        refused["idempotency_key"] = [f"Longer than {KEY_LENGTH} characters."]
    elif key is not None and "\x00" in key:
        refused["idempotency_key"] = [json_vetting.NUL]
    if refused:
        return _workflow_types(name, {name: refused}, values, 422)
    payload = payload_from_form(specs, request.form)
    try:
        result = manager.start(name, payload, idempotency_key=key)
    except InvalidInput as exc:
        messages = exc.details.get("input", {})
        if not isinstance(messages, dict):
            messages = {"_schema": messages}
        return _workflow_types(name, {name: messages}, values, 422)
    except IdempotencyConflict as exc:
        return _workflow_types(name, {name: {"idempotency_key": [exc.message]}}, values, 409)
    if result.created:
        flash(f"Started a {name} run.", "ok")
    else:
        flash("A run with this idempotency key and input already exists; showing it.", "ok")
    return redirect(url_for("dashboard.run", run_id=result.run["id"]))


# -- sign-in -------------------------------------------------------------------


@dashboard.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> str | Response | tuple[str, int]:
    target = auth.safe_next(request.values.get("next"))
    if not auth.auth_required():
        return redirect(target)
    if request.method == "POST":
        if auth.check_token(request.form.get("token", "")):
            auth.sign_in_session()
            return redirect(target)
        return render_template("sign_in.html", next=target, error="That token is not valid."), 401
    return render_template("sign_in.html", next=target, error=None)


@dashboard.post("/sign-out")
def sign_out() -> Response:
    auth.sign_out_session()
    return redirect(url_for("dashboard.sign_in"))


# -- errors --------------------------------------------------------------------


@dashboard.errorhandler(RunNotFound)
def _run_not_found(exc: RunNotFound) -> tuple[str, int]:
    return render_template("error.html", title="Run not found", message=exc.message), 404


@dashboard.errorhandler(400)
@dashboard.errorhandler(404)
def _http_error(exc: Any) -> tuple[str, int]:
    return render_template("error.html", title=exc.name, message=exc.description), exc.code
