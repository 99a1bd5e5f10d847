"""GET /api/v1/workflows search and filters: id prefix, idempotency key, input
fields, error type, time window — each answered from an index."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from app.engine.models import runs
from app.engine.queries import RunFilter
from tests.api.conftest import assert_error, signup_input, start


def ids(client: Any, **query: Any) -> list[str]:
    response = client.get("/api/v1/workflows", query_string={"limit": 500, **query})
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["id"] for item in response.get_json()["items"]]


def test_the_short_id_finds_its_run(client):
    run = start(client, "flaky", {}).get_json()
    short = run["id"][:8]
    assert run["id"] in ids(client, id_prefix=short)
    assert run["id"] in ids(client, id_prefix=short.upper())
    assert ids(client, id_prefix=run["id"][:13]) == [run["id"]]  # with its dash
    assert ids(client, id_prefix=run["id"]) == [run["id"]]
    everyone = ids(client, id_prefix=short)
    assert all(i.startswith(short) for i in everyone)


def test_an_idempotency_key_finds_its_runs_only(client):
    key = f"order-{uuid.uuid4().hex[:8]}"
    run = start(client, "signup", signup_input(), key=key).get_json()
    start(client, "signup", signup_input(), key=f"{key}-other")
    assert ids(client, idempotency_key=key) == [run["id"]]
    assert ids(client, idempotency_key=key, name="flaky") == []


def test_an_input_field_finds_the_runs_with_that_value(client):
    payload = signup_input()
    run = start(client, "signup", payload).get_json()
    start(client, "signup", signup_input())
    assert ids(client, **{"input.email": payload["email"]}) == [run["id"]]
    both = {"input.email": payload["email"], "input.plan": "free"}
    assert ids(client, **both) == [run["id"]]
    assert ids(client, **{"input.email": payload["email"], "input.plan": "pro"}) == []


def test_an_input_value_that_reads_as_json_matches_the_typed_value(client):
    fail_times = 1000 + uuid.uuid4().int % 100_000
    run = start(client, "flaky", {"fail_times": fail_times}).get_json()
    client.post(f"/api/v1/workflows/{run['id']}/cancel")
    assert ids(client, **{"input.fail_times": str(fail_times)}) == [run["id"]]
    assert run["id"] in ids(client, **{"input.fatal": "false", "name": "flaky"})


def test_error_type_and_time_window_filter(client, engine):
    run = start(client, "flaky", {}).get_json()
    client.post(f"/api/v1/workflows/{run['id']}/cancel")
    with engine.begin() as c:  # as a failed run carries it
        c.execute(
            runs.update()
            .where(runs.c.id == uuid.UUID(run["id"]))
            .values(error={"type": "QuotaExceeded", "message": "over"})
        )
    assert ids(client, error_type="QuotaExceeded") == [run["id"]]
    created = datetime.fromisoformat(run["created_at"])
    window = {
        "created_after": created.isoformat(),
        "created_before": (created + timedelta(microseconds=1)).isoformat(),
    }
    assert ids(client, **window) == [run["id"]]
    later = {"created_after": (created + timedelta(microseconds=1)).isoformat()}
    assert run["id"] not in ids(client, **later)
    # an unescaped "+00:00" arrives as " 00:00": still understood
    plain = created.strftime("%Y-%m-%dT%H:%M:%S.%f") + " 00:00"
    assert run["id"] in ids(client, created_after=plain, name="flaky")
    # an offset Postgres itself would refuse (beyond ±15:59) is still one instant
    far = (created - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=17, minutes=25)))
    assert run["id"] in ids(client, created_after=far.isoformat(), name="flaky")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"id_prefix": "abc"}, "id_prefix"),
        ({"id_prefix": "not-hex!"}, "id_prefix"),
        ({"created_after": "soon"}, "created_after"),
        ({"created_after": "0001-01-01T00:00:00+17:25"}, "created_after"),
        ({"input.a..b": "1"}, "input.a..b"),
        ({"input.email;drop": "1"}, "input.email;drop"),
        ({"error_type": ""}, "error_type"),
        ({"name": "sign\x00up"}, "name"),
        ({"idempotency_key": "k\x00"}, "idempotency_key"),
        ({"input.email": "a\x00"}, "input.email"),
    ],
)
def test_a_bad_search_is_422_naming_the_field(client, query, field):
    error = assert_error(client.get("/api/v1/workflows", query_string=query), 422, "invalid_input")
    assert set(error["details"]) == {field}, error


# -- the plans -----------------------------------------------------------------

PROBE_ROWS = 5000


@pytest.fixture(scope="module")
def probe_rows(engine: sa.Engine) -> None:
    """A few thousand finished runs, so the planner has a reason to choose."""
    with engine.begin() as c:
        c.execute(
            sa.text(
                """
                INSERT INTO workflow_runs (id, name, status, input, error, idempotency_key,
                                           created_at, updated_at, finished_at)
                SELECT gen_random_uuid(), 'explain_probe',
                       CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END,
                       jsonb_build_object('email', 'probe' || i || '@example.com', 'n', i),
                       CASE WHEN i % 10 = 0
                            THEN jsonb_build_object('type', 'Err' || (i % 50)) END,
                       'probe-' || i, now() - make_interval(secs => i), now(), now()
                FROM generate_series(1, :n) AS i
                """
            ),
            {"n": PROBE_ROWS},
        )
    # VACUUM also empties the GIN index's pending list (fresh inserts waiting to be
    # merged), which the planner prices as scanned in full: as autovacuum would have
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE workflow_runs")


def plan(manager: Any, filters: RunFilter) -> str:
    """EXPLAIN of the statement ``manager.list`` sends for these filters."""
    engine: sa.Engine = manager.engine
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        manager.list(limit=50, filters=filters)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    ((statement, params),) = sent
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + statement, params)
        text = "\n".join(row[0] for row in cursor.fetchall())
        raw.rollback()
    finally:
        raw.close()
    return text


@pytest.mark.usefixtures("probe_rows")
@pytest.mark.parametrize(
    ("filters", "index"),
    [
        (lambda probe: RunFilter(id_prefix=probe["id"][:8]), "pk_workflow_runs"),
        (
            lambda probe: RunFilter(idempotency_key=probe["key"]),
            "uq_workflow_runs_idempotency_key",
        ),
        (
            lambda probe: RunFilter(input_fields=(("email", probe["email"]),)),
            "ix_workflow_runs_input",
        ),
        (lambda probe: RunFilter(search=probe["id"][:8]), "pk_workflow_runs"),
        (lambda probe: RunFilter(error_type="Err10"), "ix_workflow_runs_error_type_created"),
        (
            lambda probe: RunFilter(name="explain_probe", status="failed"),
            "ix_workflow_runs_name_status_created",
        ),
    ],
    ids=["id prefix", "idempotency key", "input field", "search box", "error type", "name+status"],
)
def test_each_search_is_answered_from_an_index(engine, manager, filters, index):
    with engine.connect() as c:
        row = c.execute(
            sa.text(
                "SELECT id::text, idempotency_key, input->>'email' FROM workflow_runs "
                "WHERE name = 'explain_probe' ORDER BY created_at LIMIT 1 OFFSET 1234"
            )
        ).one()
    probe = {"id": row[0], "key": row[1], "email": row[2]}
    text = plan(manager, filters(probe))
    # the planner may pick another index for a combination on a small table; never a full scan
    assert index in text or "Index Scan using ix_workflow_runs_" in text, text
    assert "Seq Scan on workflow_runs" not in text, text
