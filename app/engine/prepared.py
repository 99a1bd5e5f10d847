"""Server-side prepared statements for the step protocol's hot path.

Postgres plans every statement it is sent as text; the claim and the
checkpoint are CTEs over four tables, and planning them took longer than
running them (EXPLAIN ANALYZE on this machine: claim 0.59 ms to plan, 0.48 ms
to run; checkpoint 0.38 and 0.75). Each is prepared once per connection, on
first use, and then sent as ``EXECUTE name(...)`` — in the same single round
trip as before, with the run lock in front of it.

A prepared statement lives as long as its session: a new or replaced
connection prepares again (the set of prepared names lives in the pool's
record of the connection, which is dropped with it), and a server that forgot
them (a pooler's ``DISCARD ALL``) is met by preparing again once. Behind a
pooler, use session pooling (transaction pooling does not keep them).
"""

from __future__ import annotations

import collections
import functools
import re
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg2
import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

_UNKNOWN_STATEMENT = "26000"  # invalid_sql_statement_name: not prepared on this session


@dataclass(frozen=True)
class Prepared:
    """One statement: its name, its SQL with ``$n`` placeholders, its parameters in order."""

    name: str
    sql: str
    params: tuple[str, ...]
    types: tuple[str, ...]

    def call(self) -> str:
        """``EXECUTE name(...)`` with the driver's named placeholders."""
        return f"EXECUTE {self.name}(" + ", ".join(f"%({p})s" for p in self.params) + ")"


def prepared(name: str, sql: str, params: list[tuple[str, str]]) -> Prepared:
    """A statement written with ``:name`` binds, as ``sa.text`` takes them, made ``$n``."""
    order = {param: i + 1 for i, (param, _type) in enumerate(params)}

    def number(match: re.Match[str]) -> str:
        param = match.group(1)
        return f"${order[param]}" if param in order else match.group(0)

    # a bind is ":name" not preceded by ":" or a word character (so "::jsonb" stays)
    body = re.sub(r"(?<![:\w]):([a-z_]+)\b", number, sql)
    if "%" in body:
        raise ValueError(f"{name}: a '%' would be taken for a driver placeholder in EXECUTE")
    missing = [p for p in order if f"${order[p]}" not in body]
    if missing:
        raise ValueError(f"{name}: parameters not in the statement: {missing}")
    return Prepared(name, body, tuple(p for p, _ in params), tuple(t for _, t in params))


class Rows:
    """The rows of a statement run on the raw cursor: what callers of ``execute`` read."""

    def __init__(self, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        self._rows = [_row_type(names)._make(r) for r in rows] if names else []

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise sa.exc.MultipleResultsFound("more than one row where at most one was expected")
        return self._rows[0] if self._rows else None

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]


@functools.lru_cache(maxsize=64)
def _row_type(names: tuple[str, ...]) -> Any:
    return collections.namedtuple("Row", names, rename=True)


def execute(
    conn: Connection, statements: list[Prepared], values: dict[str, Any], *, prefix: str = ""
) -> Rows | CursorResult[Any]:
    """Run ``prefix`` then each statement, in one round trip; the last one's rows.

    ``prefix`` is plain SQL without parameters (e.g. ``SET LOCAL ...;``). On an
    autocommit connection (the start, a claim, a plain step's checkpoint) the
    statement goes straight to psycopg2's cursor: SQLAlchemy's execution
    context around it cost a third of the client's time per statement here.
    Errors come out as SQLAlchemy would raise them, a lost connection
    invalidated, and its cursor events still see the statement.
    """
    done: set[str] = conn.connection.info.setdefault("stepwise_prepared", set())
    text = prefix + "; ".join(s.call() for s in statements)
    values = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in values.items()}
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and getattr(dbapi, "autocommit", False):
        return _execute_raw(conn, dbapi, statements, text, values, done)
    for statement in statements:
        if statement.name not in done:
            _prepare(conn, statement)
            done.add(statement.name)
    try:
        return conn.exec_driver_sql(text, values)
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) == _UNKNOWN_STATEMENT:
            # the session lost them; the failed statement aborted the caller's
            # transaction, so its next attempt prepares them again
            done.clear()
        raise


def _execute_raw(
    conn: Connection, dbapi: Any, statements: list[Prepared], text: str, values: dict[str, Any],
    done: set[str],
) -> Rows:
    try:
        with dbapi.cursor() as cursor:
            for statement in statements:
                if statement.name not in done:
                    cursor.execute(_prepare_sql(statement))
                    done.add(statement.name)
            conn.dispatch.before_cursor_execute(conn, cursor, text, values, None, False)
            try:
                cursor.execute(text, values)
            except psycopg2.Error as exc:
                if exc.pgcode != _UNKNOWN_STATEMENT:
                    raise
                # the session lost them (a pooler reset it): prepare again, once
                done.clear()
                for statement in statements:
                    cursor.execute(_prepare_sql(statement))
                    done.add(statement.name)
                cursor.execute(text, values)
            names = tuple(d[0] for d in cursor.description) if cursor.description else ()
            rows = cursor.fetchall() if names else []
    except psycopg2.Error as exc:
        # as SQLAlchemy's own execution would: a lost connection is invalidated
        # (the pool replaces it) and the error says so
        lost = conn.dialect.is_disconnect(exc, dbapi, None)
        if lost:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            text, values, exc, psycopg2.Error, connection_invalidated=lost, dialect=conn.dialect
        ) from exc
    return Rows(names, rows)


def _prepare_sql(statement: Prepared) -> str:
    return f"PREPARE {statement.name}({', '.join(statement.types)}) AS {statement.sql}"


def _prepare(conn: Connection, statement: Prepared) -> None:
    # sent without parameters, so the driver leaves any "%" in it alone
    conn.exec_driver_sql(_prepare_sql(statement))
