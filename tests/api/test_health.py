"""/healthz and /readyz."""

from __future__ import annotations

from tests.api.conftest import assert_error, closed_port


def test_healthz_is_ok(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_is_ready_when_database_and_broker_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_is_503_naming_the_database_when_it_is_down(make_app):
    app = make_app(database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port()}/x")
    error = assert_error(app.test_client().get("/readyz"), 503, "not_ready")
    assert "database" in error["message"] and "broker" not in error["message"]
    assert error["details"]["database"].startswith("down")
    assert error["details"]["broker"] == "ok"


def test_readyz_is_503_naming_the_broker_when_it_is_down(make_app):
    for url in (
        f"redis://127.0.0.1:{closed_port()}/0",
        f"amqp://guest:guest@127.0.0.1:{closed_port()}//",
    ):
        app = make_app(celery_broker_url=url)
        error = assert_error(app.test_client().get("/readyz"), 503, "not_ready")
        assert "broker" in error["message"] and "database" not in error["message"]
        assert error["details"] == {"database": "ok", "broker": "down: OperationalError"}
