"""Issue 12, item 11 on the dashboard: hostile form fields and filters get a 4xx
page that says what is wrong (or an empty result), never a 500, and start nothing."""

from __future__ import annotations

import html as html_lib
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.dashboard.test_pages import csrf
from tests.support.freeform import NAME, freeform_registered, run_count


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def freeform(manager) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with freeform_registered(manager.registry):
        yield f"/workflow-types/{NAME}/start"


def signup_form(client: FlaskClient, **changes: str) -> dict[str, str]:
    return {
        "csrf_token": csrf(client),
        "email": f"form-{uuid.uuid4().hex[:8]}@example.com",
        "name": "Form",
        "plan": "free",
        **changes,
    }


def page(response) -> str:  # type: ignore[no-untyped-def]
    return html_lib.unescape(response.get_data(as_text=True))


def test_dashboard_idempotency_key_over_255_characters_is_a_422_form_error(client, engine):
    before = run_count(engine)
    response = client.post(
        "/workflow-types/signup/start", data=signup_form(client, idempotency_key="k" * 256)
    )
    assert response.status_code == 422
    assert "Longer than 255 characters." in page(response)
    assert run_count(engine) == before


def test_dashboard_nul_in_a_form_field_is_a_422_form_error(client, engine):
    before = run_count(engine)
    response = client.post("/workflow-types/signup/start", data=signup_form(client, name="A\x00B"))
    assert response.status_code == 422
    assert "contains a NUL character (\\u0000), which cannot be stored" in page(response)
    assert run_count(engine) == before


def test_dashboard_nul_in_an_idempotency_key_is_a_422_form_error(client, engine):
    before = run_count(engine)
    response = client.post(
        "/workflow-types/signup/start", data=signup_form(client, idempotency_key="k\x00")
    )
    assert response.status_code == 422
    assert "NUL character" in page(response)
    assert run_count(engine) == before


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("[" * 1100 + "]" * 1100, "deeper than 32 levels"),
        ('{"n": NaN}', "NaN is not a JSON value"),
        ('{"n": 1e400}', "number out of range"),
        ('{"s": "a\\u0000"}', "NUL character"),
    ],
)
def test_dashboard_json_field_that_cannot_be_stored_is_a_422_form_error(
    client, engine, freeform, value, says
):
    before = run_count(engine)
    response = client.post(freeform, data={"csrf_token": csrf(client), "data": value})
    assert response.status_code == 422
    assert says in page(response)
    assert run_count(engine) == before


@pytest.mark.parametrize(
    "query", ["q=k%00ey", "q=" + "k" * 300, "workflow=sign%00up", "cursor=a%00b", "status=%00"]
)
def test_dashboard_search_and_filters_with_a_nul_or_an_impossible_key_answer_the_page(
    client, query
):
    response = client.get(f"/?{query}")
    assert response.status_code in (200, 302)
