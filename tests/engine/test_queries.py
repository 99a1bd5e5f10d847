"""``app.engine.queries``: what a filter means, without a database."""

from __future__ import annotations

import uuid

import pytest

from app.engine.errors import InvalidInput
from app.engine.queries import RunFilter, id_range, input_fields_from


def test_an_id_prefix_is_the_range_of_every_uuid_that_starts_with_it():
    run_id = uuid.uuid4()
    low, high = id_range(str(run_id)[:8].upper())
    assert low <= run_id <= high
    assert str(low).startswith(str(run_id)[:8]) and str(high).startswith(str(run_id)[:8])
    assert id_range(str(run_id)) == (run_id, run_id)
    assert id_range(str(run_id)[:13]) == id_range(str(run_id)[:13].replace("-", ""))


@pytest.mark.parametrize("text", ["abc", "", "xyz12345", "abcd1234" * 5, "ab cd 12"])
def test_what_is_not_an_id_prefix(text):
    assert id_range(text) is None


def test_bad_filters_name_their_field():
    cases = [
        (dict(id_prefix="zz"), "id_prefix"),
        (dict(input_fields=(("a..b", "1"),)), "input.a..b"),
        (dict(input_fields=(("a.b.c.d.e", "1"),)), "input.a.b.c.d.e"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidInput) as caught:
            RunFilter(**kwargs)
        assert set(caught.value.details) == {field}


def test_input_fields_come_from_the_query_string_only_under_input():
    from werkzeug.datastructures import MultiDict

    args = MultiDict([("input.email", "a@b.c"), ("name", "signup"), ("input.tags", "x")])
    assert input_fields_from(args) == (("email", "a@b.c"), ("tags", "x"))


def test_a_typed_value_is_also_matched_as_typed():
    clauses = RunFilter(input_fields=(("n", "5"),)).clauses()
    compiled = str(clauses[0].compile(compile_kwargs={"literal_binds": False}))
    assert compiled.count("@>") == 2  # "5" and 5
    assert RunFilter(input_fields=(("email", "a@b.c"),)).clauses()[0].compile().string.count("@>") == 1
    assert RunFilter().empty and not RunFilter(name="x").empty
    assert RunFilter(name="x", status="failed").without_status() == RunFilter(name="x")
