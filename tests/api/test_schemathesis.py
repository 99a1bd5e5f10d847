"""schemathesis against /api/openapi.json: no 5xx, every response matches its schema.

Generated requests go through the WSGI app (Flask's test client) on the test
session's real database, with API_TOKEN set and sent, so the 401 path is
documented and the rest is reachable.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.settings import get_settings, set_settings

TOKEN = "schemathesis-token"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def build_schema() -> schemathesis.schemas.BaseSchema:
    """The app with API_TOKEN set; loading its document touches no database."""
    from app import create_app

    original = get_settings()
    try:
        app = create_app(original.override(api_token=TOKEN))
    finally:
        set_settings(original)
    return schemathesis.openapi.from_wsgi(
        "/api/openapi.json", app, headers={"Authorization": f"Bearer {TOKEN}"}
    )


# loaded at import: schemathesis' lazy fixture loader does not work with pytest 9
schema = build_schema()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_openapi_document(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)
