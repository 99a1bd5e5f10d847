"""``/designer``: build a workflow from blocks on a canvas, check it while editing, save, start.

The page talks to these routes, not to ``/api``: they sit behind the
dashboard's sign-in and take the form's CSRF token (``auth.guard``), so a
browser never needs the API token. Each POST carries the definition as JSON
in a form field and gets JSON back; the work is ``app.designer.service``'s,
the same as the API's.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, jsonify, render_template, request, url_for

from app.dashboard import dashboard
from app.designer import service, store
from app.engine.definition import NAME_PATTERN
from app.engine.errors import IdempotencyConflict, InvalidInput, UnknownWorkflow
from app.engine.manager import WorkflowManager


def _manager() -> WorkflowManager:
    manager: WorkflowManager = current_app.extensions["stepwise_manager"]
    return manager


def _json_field(name: str) -> Any:
    try:
        return json.loads(request.form.get(name) or "")
    except ValueError:
        return None


def _definition() -> dict[str, Any] | None:
    body = _json_field("definition")
    return body if isinstance(body, dict) else None


def _not_json() -> tuple[Response, int]:
    problem = {"where": "definition", "code": "bad_json", "message": "not a JSON object"}
    return jsonify({"problems": [problem]}), 400


def _versions(name: str) -> list[dict[str, Any]]:
    if not NAME_PATTERN.match(name):
        return []
    return [
        {**row, "created_at": row["created_at"].isoformat()}
        for row in store.versions(_manager().engine, name)
    ]


@dashboard.get("/designer")
def designer() -> str:
    return render_template(
        "designer.html",
        actions=service.actions_json(),
        definitions=[row["name"] for row in store.latest(_manager().engine)],
        # ?name=… (a run page's "version N" link) opens that definition
        open_name=name if NAME_PATTERN.match(name := request.args.get("name", "")) else "",
    )


@dashboard.get("/designer/definitions/<name>")
def designer_versions(name: str) -> Response:
    """Every saved version of ``name``, newest first (the page's version history)."""
    return jsonify({"items": _versions(name)})


@dashboard.post("/designer/check")
def designer_check() -> Response | tuple[Response, int]:
    body = _definition()
    if body is None:
        return _not_json()
    return jsonify({"problems": service.problems_of(_manager(), body)})


@dashboard.post("/designer/save")
def designer_save() -> Response | tuple[Response, int]:
    body = _definition()
    if body is None:
        return _not_json()
    try:
        row = service.save(_manager(), body)
    except service.DefinitionInvalid as exc:
        return jsonify({"problems": exc.details["problems"]}), 422
    return jsonify({"name": row["name"], "version": row["version"],
                    "versions": _versions(row["name"])})


@dashboard.post("/designer/start")
def designer_start() -> Response | tuple[Response, int]:
    name = request.form.get("name") or ""
    payload = _json_field("input")
    manager = _manager()
    try:
        result = manager.start(name, payload if payload is not None else {})
    except UnknownWorkflow:
        return jsonify({"errors": {"_schema": [f"save {name!r} first"]}}), 404
    except InvalidInput as exc:
        messages = exc.details.get("input", {})
        return jsonify({"errors": messages if isinstance(messages, dict)
                        else {"_schema": messages}}), 422
    except IdempotencyConflict as exc:
        return jsonify({"errors": {"_schema": [exc.message]}}), 409
    run_id = str(result.run["id"])
    return jsonify({"run_id": run_id, "url": url_for("dashboard.run", run_id=run_id)})
