"""schemathesis against /api/openapi.json, with every check it has, stateful links included.

Generated requests go through the WSGI app (Flask's test client) on the test
session's real database, once with ``API_TOKEN`` set (and sent) and once
without, since the document differs: security and 401s only when a token is
configured.
"""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks

from app.settings import get_settings, set_settings

TOKEN = "schemathesis-token"
load_all_checks()
ALL_CHECKS = CHECKS.get_all()
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SETTINGS = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def build_app(token: str | None) -> Flask:
    """An app on this session's settings; loading its document touches no database."""
    from app import create_app

    original = get_settings()
    try:
        return create_app(original.override(api_token=token))
    finally:
        set_settings(original)


# loaded at import: schemathesis' lazy fixture loader does not work with pytest 9
with_token = schemathesis.openapi.from_wsgi("/api/openapi.json", build_app(TOKEN), headers=AUTH)
without_token = schemathesis.openapi.from_wsgi("/api/openapi.json", build_app(None))


# operations with a free-form JSON object (a signal's payload, a fork's new input),
# and a designed workflow's definition, whose rules (a graph without cycles,
# templates naming earlier steps, params per block) no JSON Schema can state: its
# documented 422 invalid_definition lists every problem (tests/designer)
FREE_FORM = {
    "/api/v1/workflows/{run_id}/signals/{signal}",
    "/api/v1/workflows/{run_id}/fork",
    "/api/v1/workflow-definitions",
}


def is_batch(path: str) -> bool:
    """A batch start's items must carry distinct idempotency keys, which JSON Schema
    cannot state (uniqueItems compares whole items): two generated items with one
    key are the documented 422 naming the second, not a rejected valid request."""
    return path.startswith("/api/v1/workflows/") and path.endswith("/batch")


BATCH_SAMPLE = 3


def before_call(ctx, case, **kwargs):  # type: ignore[no-untyped-def]
    """A schema-valid batch is sent with its first few items only: still valid, and
    the document's maxItems (1000) per example would leave tens of thousands of
    pending runs behind for the next modules' workers. Refused batches write
    nothing, so negative cases go as generated."""
    items = case.body.get("items") if isinstance(case.body, dict) else None
    meta = getattr(case, "meta", None)
    negative = meta is not None and not meta.generation.mode.is_positive
    if is_batch(case.path) and isinstance(items, list) and not negative:
        case.body = {**case.body, "items": items[:BATCH_SAMPLE]}


schemathesis.hook("before_call")(before_call)  # a global hook: no schema-scoped before_call


def checks_for(case):  # type: ignore[no-untyped-def]
    """Every check; for a free-form object, whose keys JSON Schema 3.0 cannot
    constrain, a key with a NUL character is a documented 422, not a rejected
    valid request (and likewise a definition that breaks the designer's rules,
    and a batch with one key twice)."""
    if case.path not in FREE_FORM and not is_batch(case.path):
        return ALL_CHECKS
    return [c for c in ALL_CHECKS if c.__name__ != "positive_data_acceptance"]


@with_token.parametrize()
@SETTINGS
def test_api_with_a_token_conforms_to_its_document(case):
    case.call_and_validate(headers=AUTH, checks=checks_for(case))


@without_token.parametrize()
@SETTINGS
def test_api_without_a_token_conforms_to_its_document(case):
    case.call_and_validate(checks=checks_for(case))


@with_token.auth()
class TokenAuth:
    """The deployment's token, as an auth provider: schemathesis then knows which
    credential is valid, and ignored_auth probes with wrong ones on its own."""

    def get(self, case, ctx):  # type: ignore[no-untyped-def]
        return TOKEN

    def set(self, case, data, ctx):  # type: ignore[no-untyped-def]
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


class WithToken(with_token.as_state_machine()):  # type: ignore[misc]
    statuses: list[int] = []

    def validate_response(self, response, case, additional_checks=None, **kwargs):  # type: ignore[no-untyped-def]
        WithToken.statuses.append(response.status_code)
        case.validate_response(response, checks=checks_for(case))


class WithoutToken(without_token.as_state_machine()):  # type: ignore[misc]
    statuses: list[int] = []

    def validate_response(self, response, case, additional_checks=None, **kwargs):  # type: ignore[no-untyped-def]
        WithoutToken.statuses.append(response.status_code)
        case.validate_response(response, checks=checks_for(case))


def test_following_links_with_a_token_conforms():
    WithToken.run(settings=settings(SETTINGS, max_examples=6, stateful_step_count=5))
    # the token was sent: most calls got past auth (a few are wrong-token probes)
    authorized = [s for s in WithToken.statuses if s != 401]
    assert len(authorized) > len(WithToken.statuses) / 2, WithToken.statuses


def test_following_links_without_a_token_conforms():
    WithoutToken.run(settings=settings(SETTINGS, max_examples=6, stateful_step_count=5))
    # no token configured: nothing answers 401, and calls were made and checked
    assert WithoutToken.statuses and 401 not in WithoutToken.statuses, WithoutToken.statuses
    assert any(s < 300 for s in WithoutToken.statuses), WithoutToken.statuses


# -- a second pass with hostile values (issue 12, item 11) ----------------------------

from hypothesis import Phase  # noqa: E402

from tests.support import hostile  # noqa: E402


def plant(case, value, text: str, header: str) -> None:  # type: ignore[no-untyped-def]
    """Put the hostile values wherever this operation takes input: NUL characters,
    non-finite and huge numbers, deep nesting, long strings."""
    if isinstance(case.body, dict):
        case.body = {**case.body, "input": {"data": value, "name": value, "email": text}}
    for name in list(case.query or {}):
        case.query[name] = text
    if case.method.upper() == "POST":
        case.headers = {**(case.headers or {}), "Idempotency-Key": header}


@with_token.parametrize()
@with_token.given(
    value=hostile.hostile_json, text=hostile.hostile_text, header=hostile.hostile_header
)
@settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.generate, Phase.shrink],  # schema examples carry no hostile values
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_hostile_values_in_every_parameter_with_a_4xx(case, value, text, header):
    import json

    from hypothesis import assume

    try:  # non-finite numbers cannot travel as JSON here: test_hostile_routes sends them raw
        json.dumps(value, allow_nan=False)
    except ValueError:
        assume(False)
    plant(case, value, text, header)
    response = case.call(headers=AUTH)
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith(
        "application/json"
    ):
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}


@pytest.fixture(scope="module", autouse=True)
def leave_no_backlog(database):  # type: ignore[no-untyped-def]
    """The runs schemathesis starts are never meant to run: cancel them and drop
    their messages, so the next module's worker does not drain them first."""
    yield
    import sqlalchemy as sa

    from app.engine.db import get_engine
    from workers import app as celery_app

    with get_engine(database).begin() as c:
        c.execute(sa.text(
            "UPDATE workflow_runs SET status = 'cancelled', finished_at = now() "
            "WHERE status IN ('pending', 'running')"
        ))
    celery_app.control.purge()
