"""Issue 12, item 11: hostile input gets a 4xx in the one error shape, never a 500.

Each scenario was a 500 on the main branch before the body vetting
(``app/api/json_body.py``, ``app/json_vetting.py``); each asserts the status,
the code, a message that says what is wrong, and that no run was written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.api.conftest import assert_error, signup_input
from tests.support.freeform import NAME, freeform_registered, run_count

SIGNUP = "/api/v1/workflows/signup"
FREEFORM = f"/api/v1/workflows/{NAME}"


@pytest.fixture
def freeform(manager) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with freeform_registered(manager.registry):
        yield FREEFORM


def post_raw(client, path: str, text: str, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(path, data=text, content_type="application/json", headers=headers)


def test_nul_in_an_input_value_is_a_422_naming_the_field(client, engine):
    before = run_count(engine)
    response = client.post(SIGNUP, json={"input": signup_input(name="Ada\u0000Lovelace")})
    error = assert_error(response, 422, "invalid_input")
    assert error["message"].startswith("input.name contains a NUL character")
    assert error["details"] == {"input": {"name": [error["message"].split(" ", 1)[1]]}}
    assert run_count(engine) == before


def test_nul_deep_inside_a_free_form_input_is_a_422_naming_its_path(client, engine, freeform):
    before = run_count(engine)
    body = {"input": {"data": {"tags": ["ok", "bad\u0000"], "k\u0000": 1}}}
    error = assert_error(client.post(freeform, json=body), 422, "invalid_input")
    assert "input.data.tags[1] contains a NUL character" in error["message"]
    assert "(and 1 more)" in error["message"]
    assert set(error["details"]["input"]["data"]) == {"tags", "k\\u0000"}
    assert run_count(engine) == before


def test_a_body_of_1100_nested_arrays_is_a_400_not_a_recursion_error(client, engine):
    before = run_count(engine)
    body = '{"input": ' + "[" * 1100 + "]" * 1100 + "}"
    assert len(body) < 2300  # 2 KB: far below the body limit
    error = assert_error(post_raw(client, SIGNUP, body), 400, "json_too_deep")
    assert "deeper than 32 levels" in error["message"]
    assert run_count(engine) == before


def test_nesting_past_the_limit_is_refused_at_its_path(client, engine, freeform):
    data: object = "leaf"
    for _ in range(40):
        data = [data]
    error = assert_error(client.post(freeform, json={"input": {"data": data}}), 400, "json_too_deep")
    assert "(at input.data" in error["message"]


@pytest.mark.parametrize("number", ["1e400", "-1e400", "9" * 4400])
def test_a_huge_number_in_a_free_form_input_is_a_422_saying_numbers_must_be_finite(
    client, engine, freeform, number
):
    before = run_count(engine)
    response = post_raw(client, freeform, '{"input": {"data": {"n": NUMBER}}}'.replace("NUMBER", number))
    error = assert_error(response, 422, "invalid_input")
    assert error["message"] == "input.data.n is a number out of range (JSON numbers must be finite)"
    assert run_count(engine) == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_a_400_malformed_json(client, engine, freeform, literal):
    before = run_count(engine)
    response = post_raw(client, freeform, '{"input": {"data": VALUE}}'.replace("VALUE", literal))
    error = assert_error(response, 400, "malformed_json")
    assert f"{literal.lstrip('-')} is not a JSON value" in error["message"]
    assert run_count(engine) == before


def test_a_huge_number_in_a_typed_field_names_the_number_not_the_type(client):
    response = post_raw(client, SIGNUP, json.dumps({"input": signup_input()})[:-2] + ', "x": 1e999}}')
    error = assert_error(response, 422, "invalid_input")
    assert "input.x is a number out of range" in error["message"]


def test_an_idempotency_key_with_a_nul_is_a_422(client, engine):
    before = run_count(engine)
    response = client.post(
        SIGNUP, json={"input": signup_input()}, headers={"Idempotency-Key": "key\u0000"}
    )
    error = assert_error(response, 422, "invalid_input")
    assert "NUL" in error["details"]["Idempotency-Key"][0]
    assert run_count(engine) == before


def test_an_idempotency_key_over_255_characters_is_a_422(client, engine):
    before = run_count(engine)
    response = client.post(SIGNUP, json={"input": signup_input()}, headers={"Idempotency-Key": "k" * 256})
    error = assert_error(response, 422, "invalid_input")
    assert "Idempotency-Key" in error["details"]
    assert run_count(engine) == before


@pytest.mark.parametrize("field", ["name", "cursor"])
def test_a_list_filter_with_a_nul_is_a_422(client, field):
    error = assert_error(client.get(f"/api/v1/workflows?{field}=sign%00up"), 422, "invalid_input")
    # the cursor's documented pattern refuses it first
    assert "NUL" in error["details"][field][0] or field == "cursor"


def test_a_storable_free_form_input_is_still_accepted_in_full(client, manager, freeform):
    """The vetting refuses what cannot be stored, nothing else: long strings, big
    finite numbers and moderate nesting go through unchanged."""
    data = {"text": "x" * 100_000, "big": 10**300, "small": 1e-300, "deep": [[[[["leaf"]]]]]}
    response = client.post(freeform, json={"input": {"data": data}})
    assert response.status_code == 202, response.get_data(as_text=True)
    run = response.get_json()
    try:
        assert manager.get(run["id"])["input"] == {"data": data}
    finally:
        manager.cancel(run["id"])


def test_retry_with_an_empty_json_body_is_not_refused(client, manager):
    run = manager.start("flaky", {"fail_times": 0}).run
    manager.cancel(run["id"])
    response = client.post(
        f"/api/v1/workflows/{run['id']}/retry", data=b"", content_type="application/json"
    )
    assert response.status_code == 202
    manager.cancel(run["id"])
