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

import re
import uuid
from dataclasses import dataclass
from typing import Any

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


def execute(
    conn: Connection, statements: list[Prepared], values: dict[str, Any], *, prefix: str = ""
) -> CursorResult[Any]:
    """Run ``prefix`` then each statement, in one round trip; the last one's rows.

    ``prefix`` is plain SQL without parameters (e.g. ``SET LOCAL ...;``).
    """
    done: set[str] = conn.connection.info.setdefault("stepwise_prepared", set())
    for statement in statements:
        if statement.name not in done:
            _prepare(conn, statement)
            done.add(statement.name)
    text = prefix + "; ".join(s.call() for s in statements)
    values = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in values.items()}
    try:
        return conn.exec_driver_sql(text, values)
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != _UNKNOWN_STATEMENT or not _autocommit(conn):
            raise
        # the session lost them (a pooler reset it): prepare again, once
        done.clear()
        for statement in statements:
            _prepare(conn, statement)
            done.add(statement.name)
        return conn.exec_driver_sql(text, values)


def _prepare(conn: Connection, statement: Prepared) -> None:
    types = ", ".join(statement.types)
    # sent without parameters, so the driver leaves any "%" in it alone
    conn.exec_driver_sql(f"PREPARE {statement.name}({types}) AS {statement.sql}")


def _autocommit(conn: Connection) -> bool:
    dbapi = conn.connection.dbapi_connection
    return bool(getattr(dbapi, "autocommit", False))
