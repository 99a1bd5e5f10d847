"""Bearer token when API_TOKEN is set; probes stay open; the token is never logged."""

from __future__ import annotations

import logging

import pytest

from tests.api.conftest import assert_error, signup_input, start

TOKEN = "tok-7f3a9c2e-secret"


@pytest.fixture
def secured(make_app):
    return make_app(api_token=TOKEN).test_client()


def test_every_api_route_needs_the_token(secured):
    for method, path in [
        ("get", "/api/v1/workflows"),
        ("get", "/api/v1/workflows/00000000-0000-4000-8000-000000000000"),
        ("post", "/api/v1/workflows/signup"),
        ("post", "/api/v1/workflows/00000000-0000-4000-8000-000000000000/retry"),
        ("post", "/api/v1/workflows/00000000-0000-4000-8000-000000000000/cancel"),
        ("get", "/api/v1/workflow-types"),
        ("get", "/api/openapi.json"),
        ("get", "/api/docs"),
        ("get", "/api/v1/unknown"),
    ]:
        response = getattr(secured, method)(path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_or_scheme_is_401(secured):
    for header in (
        "Bearer wrong",
        f"Bearer {TOKEN}x",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer ",
        f"Bearer {TOKEN[:-1]}",
    ):
        assert_error(
            secured.get("/api/v1/workflows", headers={"Authorization": header}), 401, "unauthorized"
        )


def test_the_right_token_is_let_in(secured):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert secured.get("/api/v1/workflows", headers=headers).status_code == 200
    assert secured.get("/api/openapi.json", headers=headers).status_code == 200
    response = secured.post(
        "/api/v1/workflows/signup", json={"input": signup_input()}, headers=headers
    )
    assert response.status_code == 202


def test_probes_stay_open(secured):
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200


def test_no_token_needed_when_api_token_is_unset(client):
    assert start(client, "signup", signup_input()).status_code == 202


def test_the_token_never_reaches_a_log_line(secured, caplog):
    caplog.set_level(logging.DEBUG)
    secured.post(
        "/api/v1/workflows/signup",
        json={"input": signup_input()},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    secured.get("/api/v1/workflows", headers={"Authorization": f"Bearer {TOKEN}"})
    secured.get("/api/v1/workflows", headers={"Authorization": f"Bearer {TOKEN}-wrong"})
    assert caplog.records, "the requests were logged"
    for record in caplog.records:
        assert TOKEN not in repr(record.msg) and TOKEN not in record.getMessage()
