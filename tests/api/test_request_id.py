"""X-Request-ID: kept or made, echoed, and carried by the request's log lines."""

from __future__ import annotations

import logging
import uuid

from tests.api.conftest import signup_input


def test_a_request_id_is_made_and_returned(client):
    first = client.get("/api/v1/workflow-types").headers["X-Request-ID"]
    second = client.get("/api/v1/workflow-types").headers["X-Request-ID"]
    assert first and second and first != second


def test_the_client_request_id_is_kept(client):
    rid = f"req-{uuid.uuid4().hex}"
    assert client.get("/healthz", headers={"X-Request-ID": rid}).headers["X-Request-ID"] == rid


def test_an_unsafe_request_id_is_replaced(client):
    for bad in ("a b", "x" * 200, "<script>", "id\tnewline"):
        got = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert got != bad and len(got) == 32


def test_errors_carry_the_request_id_too(client):
    rid = f"err-{uuid.uuid4().hex}"
    response = client.get("/api/v1/workflows/nope", headers={"X-Request-ID": rid})
    assert (response.status_code, response.headers["X-Request-ID"]) == (404, rid)


def test_log_lines_written_during_a_request_carry_its_id(client, caplog):
    caplog.set_level(logging.INFO)
    rid = f"log-{uuid.uuid4().hex}"
    client.post(
        "/api/v1/workflows/signup",
        json={"input": signup_input()},
        headers={"X-Request-ID": rid},
    )
    lines = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    request_lines = [line for line in lines if line.get("event") == "request"]
    assert request_lines and request_lines[-1]["request_id"] == rid
    assert request_lines[-1]["status"] == 202
    assert all(line.get("request_id") == rid for line in lines)
