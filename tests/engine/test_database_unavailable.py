"""``is_unavailable`` tells an outage (retry later) from a statement's own error."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.engine.db import is_unavailable
from tests.support import environment


def error_of(engine: sa.Engine, *statements: str) -> BaseException:
    with pytest.raises(sa.exc.SQLAlchemyError) as caught, engine.connect() as c:
        for statement in statements:
            c.exec_driver_sql(statement)
    return caught.value


def test_a_database_that_refuses_connections_is_unavailable():
    missing = sa.create_engine(environment.database_url("stepwise_test_no_such_database"),
                               poolclass=sa.pool.NullPool)
    assert is_unavailable(error_of(missing, "SELECT 1"))


def test_a_connection_terminated_under_a_statement_is_unavailable(engine):
    exc = error_of(engine, "SELECT pg_terminate_backend(pg_backend_pid())")
    assert is_unavailable(exc)


@pytest.mark.parametrize(
    "statements",
    [
        ("SET statement_timeout = 10", "SELECT pg_sleep(1)"),  # the statement's own limit
        ("SELECT 1/0",),
        ("SELECT * FROM no_such_table",),
    ],
)
def test_a_statements_own_error_is_not_an_outage(engine, statements):
    assert not is_unavailable(error_of(engine, *statements))
