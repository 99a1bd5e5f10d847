"""The runs list's query string ↔ a ``RunFilter`` (pure: no Flask, no I/O).

The same arguments drive the list, its per-status counts and the bulk
actions, so "select all matching" acts on exactly the runs the list shows.
A value the dashboard cannot use is dropped with a message rather than
turning the page into an error: the operator sees what was ignored and why.

The search box takes a run id (or its first characters, like the 8 the list
shows), an idempotency key, or ``input.<field>=<value>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.engine.errors import InvalidInput
from app.engine.queries import INPUT_PREFIX, RunFilter, parse_input_path
from app.engine.states import RunStatus

STATUSES = tuple(s.value for s in RunStatus)
# the query-string names, in the order links spell them
FILTER_ARGS = ("workflow", "status", "error_type", "created_after", "created_before", "q")


@dataclass(frozen=True)
class ListFilters:
    filters: RunFilter
    args: dict[str, Any]  # the arguments that were used (str values), for links and fields
    problems: list[str] = field(default_factory=list)

    def link_args(self, **changes: str | None) -> dict[str, Any]:
        """These arguments with some changed (``None`` drops one)."""
        merged: dict[str, str | None] = {**self.args, **changes}
        return {k: v for k, v in merged.items() if v}


def parse_time(value: str) -> datetime:
    """ISO 8601, as a ``datetime-local`` input sends it; no zone means UTC (the
    dashboard shows UTC)."""
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None


def read_filters(args: Mapping[str, str]) -> ListFilters:
    used: dict[str, str] = {}
    problems: list[str] = []
    values: dict[str, object] = {}

    def text(name: str) -> str:
        return (args.get(name) or "").replace("\x00", "").strip()

    if workflow := text("workflow"):
        used["workflow"] = values["name"] = workflow
    if status := text("status"):
        if status in STATUSES:
            used["status"] = values["status"] = status
        else:
            problems.append(f"Unknown status {status!r} ignored.")
    if error_type := text("error_type"):
        used["error_type"] = values["error_type"] = error_type
    for name in ("created_after", "created_before"):
        if raw := text(name):
            try:
                values[name] = parse_time(raw)
            except ValueError:
                problems.append(f"{name.replace('_', ' ').capitalize()} {raw!r} is not a time.")
            else:
                used[name] = raw
    after, before = values.get("created_after"), values.get("created_before")
    if isinstance(after, datetime) and isinstance(before, datetime) and after >= before:
        problems.append("Created after must be earlier than created before; both ignored.")
        for name in ("created_after", "created_before"):
            values.pop(name)
            used.pop(name)
    if query := text("q"):
        used["q"] = query
        path, sep, wanted = query.partition("=")
        if sep and path.startswith(INPUT_PREFIX):
            try:
                parse_input_path(path[len(INPUT_PREFIX) :])
            except InvalidInput:
                problems.append(f"{path!r} does not name an input field.")
                used.pop("q")
            else:
                values["input_fields"] = ((path[len(INPUT_PREFIX) :], wanted.strip()),)
        else:
            values["search"] = query
    return ListFilters(RunFilter(**values), used, problems)  # type: ignore[arg-type]
