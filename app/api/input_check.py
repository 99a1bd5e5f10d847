"""Check a start request's input against the JSON Schema the document publishes.

marshmallow is lenient where JSON Schema is not (``fields.Boolean`` takes 0
and "yes", ``fields.Integer`` takes "5"), so without this a client could send
what the OpenAPI document calls invalid and have it accepted. Checking the
published schema first makes the document the contract; the workflow's own
marshmallow schema then loads the input as before (and may refuse more).
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft7Validator


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema's ``type: [..., "null"]``."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    return out


class InputChecks:
    """One validator per workflow, built once from the input schemas the document publishes."""

    def __init__(self, input_schemas: dict[str, dict[str, Any]]) -> None:
        self._validators = {
            name: Draft7Validator(_json_schema(schema)) for name, schema in input_schemas.items()
        }

    def problems(self, workflow: str, payload: Any) -> dict[str, Any]:
        """``{field: [messages]}`` (``_schema`` for the object itself); empty when valid."""
        validator = self._validators.get(workflow)
        if validator is None:
            return {}
        found: dict[str, list[str]] = {}
        for error in validator.iter_errors(payload):
            if error.validator == "additionalProperties" and not error.absolute_path:
                extra = set(payload) - set(error.schema.get("properties", {}))
                for name in sorted(extra):
                    found.setdefault(name, []).append("Unknown field.")
                continue
            if error.validator == "required" and not error.absolute_path:
                missing = error.message.split("'")[1] if "'" in error.message else "_schema"
                found.setdefault(missing, []).append("Missing data for required field.")
                continue
            field = str(error.absolute_path[0]) if error.absolute_path else "_schema"
            found.setdefault(field, []).append(error.message)
        return found
