"""Idempotency-Key on POST /api/v1/workflows/<name>."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from tests.api.conftest import assert_error, signup_input, start


def runs_with_key(engine, key: str) -> int:
    with engine.connect() as c:
        return int(
            c.execute(
                sa.text("SELECT count(*) FROM workflow_runs WHERE idempotency_key = :k"), {"k": key}
            ).scalar_one()
        )


def test_same_key_and_same_body_answers_200_with_the_same_run(client, engine):
    key = uuid.uuid4().hex
    payload = signup_input()
    first = start(client, "signup", payload, key=key)
    assert first.status_code == 202
    again = start(client, "signup", payload, key=key)
    assert again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert runs_with_key(engine, key) == 1


def test_same_key_with_another_body_is_409(client, engine):
    key = uuid.uuid4().hex
    first = start(client, "signup", signup_input(), key=key).get_json()
    error = assert_error(
        start(client, "signup", signup_input(), key=key), 409, "idempotency_conflict"
    )
    assert error["details"]["run_id"] == first["id"]
    assert runs_with_key(engine, key) == 1


def test_the_same_key_for_two_workflows_starts_two_runs(client, engine):
    key = uuid.uuid4().hex
    assert start(client, "signup", signup_input(), key=key).status_code == 202
    assert start(client, "flaky", {}, key=key).status_code == 202
    assert runs_with_key(engine, key) == 2


def test_without_a_key_each_post_starts_a_new_run(client):
    payload = signup_input()
    a = start(client, "signup", payload).get_json()
    b = start(client, "signup", payload).get_json()
    assert a["id"] != b["id"]


def test_an_empty_or_overlong_key_is_422_naming_the_header(client):
    for key in ("", "k" * 256):
        error = assert_error(start(client, "signup", signup_input(), key=key), 422, "invalid_input")
        assert set(error["details"]) == {"Idempotency-Key"}
