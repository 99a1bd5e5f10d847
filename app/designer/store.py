"""Stored definitions: every saved version, and the registry's source of designed workflows.

A save takes a transaction-scoped advisory lock on the name, then inserts
``max(version) + 1``: two concurrent saves of one name queue on the lock and
get consecutive versions, never the same one (the primary key would refuse
it anyway). Versions are never changed or deleted; a run keeps its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from app.designer.build import DesignedWorkflow, build
from app.designer.validation import RESERVED_NAMES
from app.engine.definition import NAME_PATTERN
from app.engine.models import metadata

definitions = sa.Table(
    "workflow_definitions",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("input_schema", JSONB, nullable=False),
    sa.Column("steps", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

COLUMNS = (
    definitions.c.name, definitions.c.version, definitions.c.description,
    definitions.c.input_schema, definitions.c.steps, definitions.c.created_at,
)
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext('stepwise.definition:' || :name))")


def save(engine: Engine, body: Mapping[str, Any]) -> dict[str, Any]:
    """Store a validated definition as the next version of its name."""
    with engine.begin() as c:
        c.execute(_LOCK, {"name": body["name"]})
        version: int = c.execute(
            sa.select(sa.func.coalesce(sa.func.max(definitions.c.version), 0) + 1)
            .where(definitions.c.name == body["name"])
        ).scalar_one()
        row = c.execute(
            definitions.insert()
            .values(
                name=body["name"], version=version, description=body.get("description") or "",
                input_schema=dict(body["input_schema"]), steps=list(body["steps"]),
            )
            .returning(*COLUMNS)
        ).mappings().one()
    return dict(row)


def versions(engine: Engine, name: str) -> list[dict[str, Any]]:
    """Every version of ``name``, newest first."""
    with engine.connect() as c:
        rows = c.execute(
            sa.select(*COLUMNS).where(definitions.c.name == name)
            .order_by(definitions.c.version.desc())
        ).mappings()
        return [dict(r) for r in rows]


def latest(engine: Engine) -> list[dict[str, Any]]:
    """The newest version of every name, by name."""
    newer = definitions.alias("newer")
    with engine.connect() as c:
        rows = c.execute(
            sa.select(*COLUMNS)
            .where(definitions.c.version == (
                sa.select(sa.func.max(newer.c.version))
                .where(newer.c.name == definitions.c.name)
                .scalar_subquery()
            ))
            .order_by(definitions.c.name)
        ).mappings()
        return [dict(r) for r in rows]


def step_task_names(engine: Engine) -> list[str]:
    """``<workflow>.<step>`` of every stored step: what a worker with the designed task runs."""
    with engine.connect() as c:
        return list(c.execute(sa.text(
            "SELECT DISTINCT d.name || '.' || (s.value ->> 'name') "
            "FROM workflow_definitions d, jsonb_array_elements(d.steps) s"
        )).scalars())


class StoredDefinitions:
    """The registry's source of designed workflows (``Registry.set_source``).

    A (name, version) never changes, so its built workflow is cached for good
    (a bounded cache); "the latest version" is read from Postgres each time.
    """

    CACHE_SIZE = 256

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._built: OrderedDict[tuple[str, int], DesignedWorkflow] = OrderedDict()
        self._known: set[str] = set()  # names never go away: a positive answer is kept
        self._lock = threading.Lock()

    def find(self, name: str, version: int | None = None) -> DesignedWorkflow | None:
        if not NAME_PATTERN.match(name) or name in RESERVED_NAMES:
            return None  # run ids, control tasks ("stepwise.sweep"): no query
        if version is not None:
            with self._lock:
                cached = self._built.get((name, version))
                if cached is not None:
                    self._built.move_to_end((name, version))
                    return cached
        query = sa.select(*COLUMNS).where(definitions.c.name == name)
        query = (
            query.where(definitions.c.version == version) if version is not None
            else query.order_by(definitions.c.version.desc()).limit(1)
        )
        with self.engine.connect() as c:
            row = c.execute(query).mappings().first()
        if row is None:
            return None
        return self._cache(dict(row))

    def _cache(self, row: dict[str, Any]) -> DesignedWorkflow:
        key = (row["name"], row["version"])
        with self._lock:
            found = self._built.get(key)
        if found is not None:
            return found
        workflow = build(row["name"], row["version"], row)
        with self._lock:
            self._built[key] = workflow
            self._known.add(row["name"])
            while len(self._built) > self.CACHE_SIZE:
                self._built.popitem(last=False)
        return workflow

    def is_defined(self, name: str) -> bool:
        if name in self._known:
            return True
        return self.find(name) is not None

    def all_latest(self) -> list[DesignedWorkflow]:
        return [self._cache(row) for row in latest(self.engine)]
