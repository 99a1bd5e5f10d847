"""Scenarios 11 and 12 against the real web process (the Procfile's gunicorn line).

tests/api proves the same contract in-process (Flask's test client, a threaded
werkzeug server); here every request crosses a real socket into gunicorn's
sync workers, and every outcome is counted.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.engine.errors import IllegalTransition
from tests.reliability.procfile import Web, assert_error_shape, procfile_web
from tests.support.counts import runs_and_steps_for_key

pytestmark = pytest.mark.slow

SIGNUP = "/api/v1/workflows/signup"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def web(database: str, manager) -> Iterator[Web]:  # type: ignore[no-untyped-def]
    began = _now(manager)
    with procfile_web() as server:
        yield server
    # no worker runs here: cancel what we started, so no later test's sweep sends it
    with manager.engine.connect() as c:
        ids = (
            c.execute(
                sa.text(
                    "SELECT id FROM workflow_runs WHERE status IN ('pending', 'running') AND created_at >= :t"
                ),
                {"t": began},
            )
            .scalars()
            .all()
        )
    for run_id in ids:
        with contextlib.suppress(IllegalTransition):
            manager.cancel(run_id)


def _now(manager):  # type: ignore[no-untyped-def]
    with manager.engine.connect() as c:
        return c.execute(sa.text("SELECT now()")).scalar_one()


def signup_body() -> dict:  # type: ignore[type-arg]
    return {
        "input": {"email": f"abuse-{uuid.uuid4().hex[:10]}@example.com", "name": "Abuse Test", "plan": "free"}
    }


def test_twenty_concurrent_posts_with_one_key_start_one_run_through_gunicorn(web, engine):
    """Scenario 11: 20 identical POSTs released at once → 1 run, 19×200 + 1×202."""
    key = f"abuse-{uuid.uuid4().hex}"
    body = signup_body()
    barrier = threading.Barrier(20)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def post() -> None:
        with httpx.Client(base_url=web.base, timeout=60) as http:
            barrier.wait()
            response = http.post(SIGNUP, json=body, headers={"Idempotency-Key": key})
        with lock:
            answers.append((response.status_code, response.json()["id"]))

    threads = [threading.Thread(target=post) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)

    statuses = Counter(status for status, _ in answers)
    assert statuses == {200: 19, 202: 1}
    assert len({run_id for _, run_id in answers}) == 1
    runs, steps = runs_and_steps_for_key(engine, key)
    with engine.connect() as c:
        users = c.execute(
            sa.text("SELECT count(*) FROM users WHERE email = :e"), {"e": body["input"]["email"]}
        ).scalar()
    assert (runs, steps, users) == (1, 5, 0)  # one run, its five steps; no worker ran it
    print(f"20 concurrent POSTs, one key: statuses {dict(statuses)}, runs {runs}")


def test_bad_bodies_get_their_status_in_the_error_shape_and_start_nothing(web, engine):
    """Scenario 12: 2 MiB → 413, wrong content type → 415, broken JSON → 400."""
    with engine.connect() as c:
        before = c.execute(sa.text("SELECT count(*) FROM workflow_runs")).scalar()
    outcomes: Counter[int] = Counter()
    with httpx.Client(base_url=web.base, timeout=30) as http:
        big = signup_body()
        big["input"]["name"] = "x" * (2 * 1024 * 1024)
        response = http.post(SIGNUP, json=big)
        assert_error_shape(response, 413, "payload_too_large")
        outcomes[response.status_code] += 1

        for content_type, data in (
            ("text/plain", b"email=a@b.c"),
            ("application/x-www-form-urlencoded", b"input=x"),
            ("application/xml", b"<input/>"),
        ):
            response = http.post(SIGNUP, content=data, headers={"Content-Type": content_type})
            error = assert_error_shape(response, 415, "unsupported_media_type")
            assert error["details"] == {"content_type": content_type}
            outcomes[response.status_code] += 1

        for data in (b'{"input": {', b"{'input': {}}", b"\xff\xfe", b'{"input": {}} trailing'):
            response = http.post(SIGNUP, content=data, headers={"Content-Type": "application/json"})
            assert_error_shape(response, 400, "malformed_json")
            outcomes[response.status_code] += 1

        # the server is still healthy after all of that
        assert http.post(SIGNUP, json=signup_body()).status_code == 202
    with engine.connect() as c:
        after = c.execute(sa.text("SELECT count(*) FROM workflow_runs")).scalar()
    assert after - before == 1  # only the good request started a run
    assert outcomes == {413: 1, 415: 3, 400: 4}
    print(f"bad bodies over real HTTP: {dict(outcomes)}")


def test_schemathesis_over_real_http_finds_no_5xx_and_no_schema_violation(web):
    """Scenario 12: the live /api/openapi.json, loaded over HTTP; each operation
    gets generated requests through a real socket; every answer is checked."""
    schema = schemathesis.openapi.from_url(f"{web.base}/api/openapi.json", timeout=10)
    statuses: Counter[int] = Counter()
    per_operation: Counter[str] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(base_url=web.base, timeout=30)
            statuses[response.status_code] += 1
            per_operation[case.operation.label] += 1
            case.validate_response(response, checks=CHECKS)

        check()

    assert all(status < 500 for status in statuses), statuses
    assert set(per_operation) == {op.label for op in operations}
    print(
        f"schemathesis over HTTP: {sum(statuses.values())} requests to "
        f"{len(operations)} operations, statuses {dict(sorted(statuses.items()))}"
    )
