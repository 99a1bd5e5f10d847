"""Every error is the one JSON shape: routing errors, a database that is down."""

from __future__ import annotations

from tests.api.conftest import assert_error, closed_port, signup_input, start


def test_an_unknown_url_is_404_json_not_html(client):
    for path in ("/api/v1/nothing-here", "/api/v2/workflows", "/no/such/page"):
        response = client.get(path, headers={"Accept": "text/html"})
        assert_error(response, 404, "not_found")
        assert b"<html" not in response.data.lower()


def test_a_wrong_method_is_405_with_allow(client):
    response = client.delete("/api/v1/workflows")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]
    assert_error(client.put("/api/v1/workflow-types"), 405, "method_not_allowed")


def test_database_down_answers_503_in_the_error_shape(make_app):
    down = make_app(
        database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port()}/stepwise"
    ).test_client()
    for response in (
        down.get("/api/v1/workflows"),
        down.get("/api/v1/workflows/00000000-0000-4000-8000-000000000000"),
        start(down, "signup", signup_input()),
        down.post("/api/v1/workflows/00000000-0000-4000-8000-000000000000/cancel"),
    ):
        error = assert_error(response, 503, "database_unavailable")
        assert error["details"] == {"dependency": "database"}
        assert response.headers["Retry-After"]
