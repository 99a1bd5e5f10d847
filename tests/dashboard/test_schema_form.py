from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.dashboard.schema_form import describe, payload_from_form
from app.workflows.signup import SignupInput


class Mixed(Schema):
    count = fields.Integer(load_default=1)
    ratio = fields.Float()
    urgent = fields.Boolean(load_default=False)
    tags = fields.List(fields.String())


def test_signup_schema_is_described_with_types_choices_and_limits():
    specs = {s.key: s for s in describe(SignupInput())}
    assert list(specs) == ["email", "name", "plan", "phone"]
    assert specs["email"].widget == "email" and specs["email"].required
    assert not specs["phone"].required
    assert specs["plan"].widget == "select" and specs["plan"].choices == ("free", "pro")
    assert specs["name"].constraints == "min 1, max 200"


def test_form_strings_become_typed_values_and_blanks_are_left_out():
    specs = describe(Mixed())
    assert [s.widget for s in specs] == ["integer", "number", "checkbox", "json"]
    assert specs[0].default == 1
    payload = payload_from_form(specs, {"count": "3", "ratio": "", "urgent": "on", "tags": '["a"]'})
    assert payload == {"count": 3, "urgent": True, "tags": ["a"]}


def test_values_that_do_not_convert_are_passed_on_for_the_schema_to_reject():
    payload = payload_from_form(describe(Mixed()), {"count": "three", "tags": "[oops"})
    assert payload == {"count": "three", "urgent": False, "tags": "[oops"}


def test_length_and_range_limits_are_listed():
    class Limits(Schema):
        n = fields.Integer(validate=validate.Range(min=0, max=9))

    assert describe(Limits())[0].constraints == "min 0, max 9"
