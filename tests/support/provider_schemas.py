"""Validate request bodies against the providers' published schemas (tests/support/schemas)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

SCHEMAS = Path(__file__).resolve().parent / "schemas"

# what SendGrid accepts as an address: no spaces, one @, a dotted domain
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")

_formats = FormatChecker()


@_formats.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or _EMAIL.match(value) is not None


@cache
def _validator(name: str) -> Draft7Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=_formats)


def violations(name: str, body: Any) -> list[str]:
    """Each way ``body`` breaks the schema ``name``, as ``path: message``; empty if none."""
    errors = sorted(_validator(name).iter_errors(body), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in errors]


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back into objects: ``a[b]=c`` → ``{"a": {"b": "c"}}``,
    ``a[0]=x`` → ``{"a": ["x"]}``; scalars stay strings, as on the wire."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        names = [key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", key)]
        node: Any = root
        for name, following in zip(names, names[1:] + [None], strict=True):
            if following is None:
                node[name] = value
            else:
                node = node.setdefault(name, {})
    return {k: _lists(v) for k, v in root.items()}


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        if value and all(k.isdigit() for k in value):
            return [_lists(value[k]) for k in sorted(value, key=int)]
        return {k: _lists(v) for k, v in value.items()}
    return value
