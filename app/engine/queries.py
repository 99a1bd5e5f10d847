"""Which runs a filter means, written once for the list, bulk actions and the dashboard.

A ``RunFilter`` turns into plain ``WHERE`` clauses on ``workflow_runs``, each
one answerable from an index (migration 0006 and the initial schema):

- ``name``, ``status``: the (name|status, created_at, id) indexes, and
  (name, status, created_at, id) for both at once;
- ``error_type``: a partial expression index on ``error->>'type'``;
- ``created_after`` (inclusive) / ``created_before`` (exclusive): a range on
  the created_at indexes;
- ``id_prefix``: the short id the dashboard shows. UUIDs compare byte by byte,
  the same order as their hex text, so a hex prefix is a contiguous range
  ``[prefix000…, prefixfff…]`` of the primary key — no extra index to keep up;
- ``idempotency_key``: the unique (idempotency_key, name) index;
- ``input``: containment ``input @> '{"email": "ada@example.com"}'`` on a GIN
  ``jsonb_path_ops`` index; a value that reads as a JSON number, boolean or
  null also matches that typed value (``input.n=5`` finds ``{"n": 5}``);
- ``search`` (the dashboard's box): an id prefix or an idempotency key.

Bad values raise ``InvalidInput`` naming the field, so the API and the
dashboard report them the same way.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from app.engine.errors import InvalidInput
from app.engine.models import runs

MIN_ID_PREFIX = 4
MAX_INPUT_FIELDS = 8
MAX_INPUT_DEPTH = 4
INPUT_PREFIX = "input."
_HEX = re.compile(r"^[0-9a-f]+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


def _bad(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(f"invalid value for {field_name}", details={field_name: [message]})


def id_range(prefix: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The smallest and largest UUID starting with ``prefix`` (dashes optional),
    or None when it is not hex or shorter than ``MIN_ID_PREFIX`` digits."""
    digits = prefix.strip().lower().replace("-", "")
    if len(digits) < MIN_ID_PREFIX or len(digits) > 32 or not _HEX.match(digits):
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def parse_input_path(path: str) -> tuple[str, ...]:
    """``email`` or ``address.city`` → its segments; InvalidInput when malformed."""
    segments = tuple(path.split("."))
    if len(segments) > MAX_INPUT_DEPTH or not all(_SEGMENT.match(s) for s in segments):
        raise _bad(
            INPUT_PREFIX + path,
            f"name a field of the input: letters, digits, _ or -, "
            f"up to {MAX_INPUT_DEPTH} levels joined by dots",
        )
    return segments


def _candidates(raw: str) -> list[Any]:
    """The string itself, and the typed JSON scalar it spells, if any."""
    values: list[Any] = [raw]
    try:
        typed = json.loads(raw)
    except ValueError:
        return values
    if typed is None or isinstance(typed, bool | int | float):
        values.append(typed)
    return values


def _nest(segments: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc: Any = value
    for segment in reversed(segments):
        doc = {segment: doc}
    result: dict[str, Any] = doc
    return result


@dataclass(frozen=True)
class RunFilter:
    name: str | None = None
    status: str | None = None
    error_type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    id_prefix: str | None = None
    idempotency_key: str | None = None
    input_fields: tuple[tuple[str, str], ...] = field(default=())
    search: str | None = None

    def __post_init__(self) -> None:
        for name in ("name", "status", "error_type", "id_prefix", "idempotency_key", "search"):
            value = getattr(self, name)
            if isinstance(value, str) and "\x00" in value:  # Postgres text cannot hold it
                raise _bad(name, "must not contain a NUL character")
        for path, value in self.input_fields:
            if "\x00" in path or "\x00" in value:
                raise _bad(INPUT_PREFIX + path, "must not contain a NUL character")
        if self.id_prefix is not None and id_range(self.id_prefix) is None:
            raise _bad("id_prefix", f"at least {MIN_ID_PREFIX} hexadecimal digits of a run id")
        if len(self.input_fields) > MAX_INPUT_FIELDS:
            raise _bad("input", f"at most {MAX_INPUT_FIELDS} input fields")
        for path, _ in self.input_fields:
            parse_input_path(path)
        # an empty window (after >= before) is no error: it matches nothing

    @property
    def empty(self) -> bool:
        return self == RunFilter()

    def without_status(self) -> RunFilter:
        return replace(self, status=None)

    def clauses(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.name:
            where.append(runs.c.name == self.name)
        if self.status:
            where.append(runs.c.status == self.status)
        if self.error_type:
            # the partial index is WHERE error IS NOT NULL: say so, for the planner
            where.append(runs.c.error.is_not(None))
            where.append(runs.c.error["type"].astext == self.error_type)
        if self.created_after is not None:
            where.append(runs.c.created_at >= self.created_after)
        if self.created_before is not None:
            where.append(runs.c.created_at < self.created_before)
        if self.id_prefix is not None:
            low, high = id_range(self.id_prefix) or (None, None)
            where.append(runs.c.id.between(low, high))
        if self.idempotency_key is not None:
            where.append(runs.c.idempotency_key == self.idempotency_key)
        for path, raw in self.input_fields:
            segments = parse_input_path(path)
            where.append(sa.or_(*(runs.c.input.contains(_nest(segments, v)) for v in _candidates(raw))))
        if self.search:
            where.append(self._search_clause(self.search.strip()))
        return where

    @staticmethod
    def _search_clause(text: str) -> ColumnElement[bool]:
        by_key = runs.c.idempotency_key == text
        bounds = id_range(text)
        if bounds is None:
            return by_key
        return sa.or_(runs.c.id.between(*bounds), by_key)

    def apply(self, query: sa.Select[Any]) -> sa.Select[Any]:
        clauses = self.clauses()
        return query.where(*clauses) if clauses else query


def input_fields_from(args: Any) -> tuple[tuple[str, str], ...]:
    """``input.<path>=value`` pairs of a query string (a werkzeug MultiDict or a dict)."""
    items = args.items(multi=True) if hasattr(args, "getlist") else args.items()
    return tuple(
        (key[len(INPUT_PREFIX) :], str(value)) for key, value in items if key.startswith(INPUT_PREFIX)
    )


def matching_ids(conn: sa.Connection, filters: RunFilter, limit: int) -> list[uuid.UUID]:
    """Ids of the newest ``limit`` runs the filter matches (the list's order)."""
    query = filters.apply(sa.select(runs.c.id).order_by(runs.c.created_at.desc(), runs.c.id.desc())).limit(
        limit
    )
    return list(conn.execute(query).scalars())


def count_matching(conn: sa.Connection, filters: RunFilter, cap: int) -> int:
    """How many runs match, counting no further than ``cap``."""
    inner = filters.apply(sa.select(sa.literal(1))).select_from(runs).limit(cap).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(inner)).scalar_one())
