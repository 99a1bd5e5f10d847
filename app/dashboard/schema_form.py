"""A workflow's marshmallow input schema as a description and an HTML form.

Pure: reads field objects, never validates. Validation stays with the
engine (``WorkflowManager.start``), so the form and the API accept exactly
the same inputs; this module only turns form strings into JSON-ish values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import marshmallow
from marshmallow import fields, validate

from app import json_vetting


@dataclass(frozen=True)
class FieldSpec:
    key: str
    type_name: str
    widget: str  # text | email | integer | number | checkbox | select | json
    required: bool
    default: Any
    choices: tuple[str, ...] = ()
    constraints: str = ""
    description: str = ""


def describe(schema: marshmallow.Schema) -> list[FieldSpec]:
    """The fields a caller sends, in declaration order."""
    specs = []
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        choices: tuple[str, ...] = ()
        notes: list[str] = []
        for validator in field.validators:
            if isinstance(validator, validate.OneOf):
                choices = tuple(str(c) for c in validator.choices)
            elif isinstance(validator, (validate.Length, validate.Range)):
                if validator.min is not None:
                    notes.append(f"min {validator.min}")
                if validator.max is not None:
                    notes.append(f"max {validator.max}")
        default = field.load_default
        specs.append(
            FieldSpec(
                key=field.data_key or name,
                type_name=type(field).__name__,
                widget="select" if choices else _widget(field),
                required=bool(field.required),
                default=None if default is marshmallow.missing or callable(default) else default,
                choices=choices,
                constraints=", ".join(notes),
                description=str(field.metadata.get("description", "")),
            )
        )
    return specs


def _widget(field: fields.Field[Any]) -> str:
    if isinstance(field, fields.Email):
        return "email"
    if isinstance(field, fields.Boolean):
        return "checkbox"
    if isinstance(field, fields.Integer):
        return "integer"
    if isinstance(field, fields.Number):
        return "number"
    if isinstance(field, (fields.String, fields.UUID, fields.DateTime, fields.Date)):
        return "text"
    return "json"


def payload_from_form(specs: list[FieldSpec], form: Mapping[str, str]) -> dict[str, Any]:
    """Form strings → a payload. A value that does not convert is passed on as
    typed, so the schema reports it with its usual message."""
    payload: dict[str, Any] = {}
    for spec in specs:
        if spec.widget == "checkbox":
            payload[spec.key] = spec.key in form
            continue
        raw = form.get(spec.key, "")
        if raw.strip() == "":
            continue  # absent: the schema applies its default or says it is required
        payload[spec.key] = _convert(spec.widget, raw.strip())
    return payload


def form_problems(specs: list[FieldSpec], form: Mapping[str, str]) -> dict[str, list[str]]:
    """What in the form can never become a storable input, by field.

    The schema judges what a value means; this catches what it cannot judge
    and Postgres cannot store: a NUL character anywhere, a number that is not
    finite, JSON nested too deeply or using ``NaN``/``Infinity``. Malformed
    JSON is left to the schema, which reports it with its usual message.
    """
    errors: dict[str, list[str]] = {}
    for spec in specs:
        raw = form.get(spec.key, "").strip()
        if "\x00" in raw:
            errors[spec.key] = [json_vetting.NUL]
        elif spec.widget == "number" and raw and not _finite(raw):
            errors[spec.key] = [json_vetting.NOT_FINITE]
        elif spec.widget == "json" and raw:
            try:
                json_vetting.loads(raw)
            except json_vetting.Refused as exc:
                errors[spec.key] = [exc.message.replace("the request body", "this JSON")]
            except ValueError:
                pass
    return errors


def _finite(raw: str) -> bool:
    try:
        return math.isfinite(float(raw))
    except ValueError:
        return True  # not a number at all: the schema says so


def _convert(widget: str, raw: str) -> Any:
    try:
        if widget == "integer":
            return int(raw)
        if widget == "number":
            return float(raw)
        if widget == "json":
            return json.loads(raw)
    except ValueError:
        return raw
    return raw
