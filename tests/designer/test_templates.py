"""Templates are path lookups and conditions are data: what they render and decide."""

from __future__ import annotations

from app.designer.conditions import holds, problems
from app.designer.templates import paths_in, render

SCOPE = {"input": {"email": "a@example.com", "n": 3}, "steps": {"wait": {"timed_out": True}}}


def test_a_template_alone_keeps_the_value_and_inside_text_becomes_text():
    assert render("{{ input.n }}", SCOPE) == 3
    assert render("n={{ input.n }}, to {{input.email}}", SCOPE) == "n=3, to a@example.com"
    assert render({"a": ["{{ steps.wait.timed_out }}"]}, SCOPE) == {"a": [True]}


def test_a_path_that_leads_nowhere_renders_as_null_or_nothing():
    assert render("{{ input.missing }}", SCOPE) is None
    assert render("x{{ steps.none.field }}y", SCOPE) == "xy"


def test_only_input_and_steps_paths_are_looked_up():
    assert list(paths_in({"a": "{{ settings.api_token }} {{ input.x }}"})) == [
        "settings.api_token", "input.x"]
    assert render("{{ __import__('os') }}", SCOPE) is None


def test_conditions_compare_a_path_with_a_value():
    assert holds({"path": "steps.wait.timed_out", "equals": True}, SCOPE)
    assert not holds({"path": "input.n", "not_equals": 3}, SCOPE)
    assert holds({"path": "input.gone", "exists": False}, SCOPE)
    assert problems({"path": "os.environ", "equals": 1, "extra": 2}) == [
        "path must be input.<field> or steps.<step>.<field>", "unknown keys: extra"]
