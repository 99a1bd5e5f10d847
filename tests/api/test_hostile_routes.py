"""Hostile input on every route the web app has, API and dashboard alike (issue 12,
item 11): hypothesis sends NUL characters, non-finite and huge numbers, deep
nesting and long strings in path parameters, query strings, JSON bodies and form
fields; the answer is never a 5xx, and an API error is the one JSON shape."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import freeform, hostile

QUERY_NAMES = ("status", "name", "cursor", "limit", "q", "workflow", "wait", "next")
FORM_NAMES = ("email", "name", "plan", "data", "fail_times", "idempotency_key", "token")
HYPOTHESIS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@pytest.fixture(scope="module")
def hostile_app(database: str, manager) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    from app import create_app

    with freeform.freeform_registered(manager.registry):
        yield create_app()


def routes(app: Flask) -> list[tuple[str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    return sorted(found)


def _rules() -> list[tuple[str, str]]:
    from app import create_app

    return routes(create_app())


def fill(rule: str, method: str, text: str, target: str) -> str:
    """Every ``<converter:name>`` of a rule: a start names a real workflow, the rest the text."""

    def one(match: re.Match[str]) -> str:
        name = match.group(2)
        value = target if name in ("name", "name_or_id") and method == "POST" else text
        return quote(value, safe="")

    return re.sub(r"<(?:(\w+):)?(\w+)>", one, rule)


def check(response, path: str) -> None:  # type: ignore[no-untyped-def]
    try:
        assert response.status_code < 500, (path[:200], response.get_data(as_text=True)[:500])
        if path.startswith("/api/") and response.status_code >= 400:
            body = response.get_json()
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    finally:
        response.close()  # a live-update stream gives its slot back only when closed


def csrf_token(client) -> str:  # type: ignore[no-untyped-def]
    html = client.get("/workflow-types").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


@pytest.mark.parametrize(("method", "rule"), _rules())
@HYPOTHESIS
@given(
    text=hostile.hostile_text,
    value=hostile.hostile_json,
    raw=hostile.raw_bodies,
    target=st.sampled_from(["signup", freeform.NAME, "flaky"]),
    as_form=st.booleans(),
)
def test_every_route_answers_hostile_input_without_a_server_error(
    hostile_app, method, rule, text, value, raw, target, as_form
):
    client = hostile_app.test_client()
    path = fill(rule, method, text, target)
    url = f"{path}?{urlencode({n: text for n in QUERY_NAMES})}"
    if method == "GET":
        check(client.get(url), path)
        return
    if as_form:
        form = {n: json.dumps(value) if n == "data" else text for n in FORM_NAMES}
        form["csrf_token"] = csrf_token(client)
        check(client.open(url, method=method, data=form), path)
        return
    for body in (json.dumps({"input": {"data": value, "name": value}}), raw):
        check(client.open(url, method=method, data=body, content_type="application/json"), path)
