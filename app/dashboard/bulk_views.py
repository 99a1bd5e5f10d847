"""Bulk retry and cancel from a filtered runs list.

Three server-rendered steps, no script needed: the list offers "select all
N matching" (a required checkbox) with the actions that fit its status
filter → a confirmation page that recounts what matches and how many of
those the action can change → a POST (CSRF-checked by the blueprint's guard)
that runs ``app.engine.bulk`` and shows what changed and what was skipped.
The filters travel as the list's own query-string arguments, so the bulk
action means exactly the runs the list showed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from flask import abort, current_app, render_template, request

from app.dashboard import dashboard
from app.dashboard.counts import Count
from app.dashboard.filters import ListFilters, read_filters
from app.engine.bulk import ACTIONS, BULK_MAX, Action, bulk_transition
from app.engine.manager import WorkflowManager
from app.engine.queries import count_matching
from app.engine.states import RunStatus, can_cancel, can_retry, run_sources

TARGET = {"retry": RunStatus.PENDING, "cancel": RunStatus.CANCELLED}
CAN = {"retry": can_retry, "cancel": can_cancel}


@dataclass(frozen=True)
class BulkOffer:
    label: str  # how many match, as the tabs count them ("213", "10,000+")
    actions: tuple[Action, ...]


def bulk_offer(chosen: ListFilters, counts: dict[str, Count]) -> BulkOffer | None:
    """What the list offers: only on a filtered list with something to act on."""
    if chosen.filters.empty:
        return None
    status = chosen.filters.status
    shown = [counts[status]] if status else list(counts.values())
    total = sum(c.value for c in shown)
    if total == 0:
        return None
    actions = tuple(a for a in ACTIONS if status is None or CAN[a](status))
    if not actions:
        return None
    approximate = not all(c.exact for c in shown)
    return BulkOffer(label=f"{total:,}{'+' if approximate else ''}", actions=actions)


def _manager() -> WorkflowManager:
    manager: WorkflowManager = current_app.extensions["stepwise_manager"]
    return manager


def _action(action: str) -> Action:
    if action not in ACTIONS:
        abort(404, f"No bulk action {action!r}.")
    return action


@dashboard.get("/bulk/<action>")
def bulk_confirm(action: str) -> tuple[str, int]:
    verb = _action(action)
    chosen = read_filters(request.args)
    filters = chosen.filters
    sources = {s.value for s in run_sources(TARGET[verb])}
    with _manager().engine.connect() as conn:
        matching = count_matching(conn, filters, BULK_MAX + 1)
        if filters.status:
            eligible = matching if filters.status in sources else 0
        else:
            eligible = sum(count_matching(conn, replace(filters, status=s), BULK_MAX + 1) for s in sources)
    page = render_template(
        "bulk_confirm.html",
        action=verb,
        chosen=chosen,
        matching=min(matching, BULK_MAX),
        more=matching > BULK_MAX,
        eligible=min(eligible, BULK_MAX),
        sources=sorted(sources),
        limit=BULK_MAX,
        describe=describe,
    )
    return page, 200


@dashboard.post("/bulk/<action>")
def bulk_act(action: str) -> tuple[str, int]:
    verb = _action(action)
    chosen = read_filters(request.form)
    if chosen.problems:  # never act on a wider set than the operator confirmed
        abort(400, " ".join(chosen.problems))
    if chosen.filters.empty:
        abort(400, "A bulk action needs a filter; choose one on the runs list.")
    result = bulk_transition(_manager(), verb, chosen.filters, BULK_MAX)
    page = render_template("bulk_result.html", action=verb, chosen=chosen, result=result, describe=describe)
    return page, 200


def describe(chosen: ListFilters) -> list[tuple[str, Any]]:
    """The filters in words, for the confirmation and the result."""
    labels = {
        "workflow": "workflow",
        "status": "status",
        "error_type": "error type",
        "created_after": "created after",
        "created_before": "created before",
        "q": "search",
    }
    return [(labels[k], v) for k, v in chosen.args.items() if k in labels]
