"""The parts of ``/api/openapi.json`` that flask-smorest cannot infer.

- **Security only when it is real.** With ``API_TOKEN`` set, every ``/api``
  operation requires the bearer scheme and documents its 401; without it the
  document declares no security at all, so generated clients and contract
  testers neither send nor expect a token the server ignores.
- **No catch-all ``default``** (``StepwiseApi`` turns it off): each operation
  lists the statuses it really answers, plus the 503 every database-backed
  route gives when Postgres is down.
- **One start operation per registered workflow**, e.g.
  ``POST /api/v1/workflows/signup`` whose request body is that workflow's own
  input schema (the marshmallow schema that validates it, converted by
  apispec, so the document cannot drift from validation). The generic
  ``POST /api/v1/workflows/{name_or_id}`` stays for clients that start
  workflows by a name they hold at run time.
- **One batch operation per registered workflow** likewise,
  ``POST /api/v1/workflows/signup/batch`` whose items carry that input schema;
  the generic ``POST /api/v1/workflows/{name}/batch`` serves requests but is
  not documented, for the same reason.
- **Links** from a started run to reading, retrying and cancelling it, so
  stateful testers (and people) can follow a run's life.

Everything is added through an apispec plugin (``operation_helper``) and
``add_start_operations``, both run once when the app is built.
"""

from __future__ import annotations

from typing import Any

from apispec import BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin
from werkzeug.routing import Rule

from app.engine.batch import BATCH_MAX
from app.engine.registry import Registry

ERROR_REF = {"$ref": "#/components/schemas/Error"}
RUN_REF = {"$ref": "#/components/schemas/Run"}
GENERIC_START = "/api/v1/workflows/{name_or_id}"
GENERIC_BATCH = "/api/v1/workflows/{name}/batch"
BATCH_RESULT_REF = {"$ref": "#/components/schemas/BatchResult"}
GET_RUN = "#/paths/~1api~1v1~1workflows~1{name_or_id}/get"
RETRY_RUN = "#/paths/~1api~1v1~1workflows~1{run_id}~1retry/post"
CANCEL_RUN = "#/paths/~1api~1v1~1workflows~1{run_id}~1cancel/post"

# Statuses the web layer answers before a view runs, or for every database read.
UNAUTHORIZED = "missing or wrong bearer token: send Authorization: Bearer <API_TOKEN>"
UNAVAILABLE = "the database is unavailable; try again after Retry-After seconds"


def error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def run_links(*, get: bool = True) -> dict[str, Any]:
    """Where a run's id leads: read it, retry it, cancel it."""
    by_id = {"name_or_id": "$response.body#/id"}
    links = {
        "RetryRun": {
            "operationRef": RETRY_RUN,
            "parameters": {"run_id": "$response.body#/id"},
            "description": "retry this run (once it failed or was cancelled)",
        },
        "CancelRun": {
            "operationRef": CANCEL_RUN,
            "parameters": {"run_id": "$response.body#/id"},
            "description": "cancel this run (while pending or running)",
        },
    }
    if get:
        links["GetRun"] = {
            "operationRef": GET_RUN,
            "parameters": by_id,
            "description": "read this run with its steps",
        }
    return links


def _returns_run(operation: dict[str, Any], status: str) -> bool:
    response = operation.get("responses", {}).get(status)
    if not isinstance(response, dict):
        return False
    return bool(response.get("content", {}).get("application/json", {}).get("schema") == RUN_REF)


class StepwiseDocPlugin(BasePlugin):  # type: ignore[misc]
    """Adds security, the shared error statuses and links to each ``/api`` operation."""

    def __init__(self, token_required: bool) -> None:
        self.token_required = token_required

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if not path or not operations or not path.startswith("/api/"):
            return  # /healthz, /readyz and /metrics are open and touch no auth
        if path in (GENERIC_START, GENERIC_BATCH):
            # POST /workflows/<name>(/batch) is documented once per workflow, with its
            # input schema; the generic form (free-form input) still serves requests
            operations.pop("post", None)
        for method, operation in operations.items():
            if method == "parameters" or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            if self.token_required:
                operation["security"] = [{"bearerAuth": []}]
                responses.setdefault("401", error_response(UNAUTHORIZED))
            responses.setdefault("503", error_response(UNAVAILABLE))
            for status in ("200", "202"):
                if _returns_run(operation, status):
                    # a run read by GET links on to retry and cancel, not to itself
                    links = run_links(get=method != "get")
                    responses[status].setdefault("links", {}).update(links)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def start_operation(name: str, description: str, input_ref: str) -> dict[str, Any]:
    body = {
        "description": f"the {name} workflow's input, validated before the run is recorded",
        "required": True,
        "content": {"application/json": {"schema": {"$ref": input_ref}}},
    }
    return {
        "tags": ["workflows"],
        "operationId": f"start_{name}",
        "summary": f"Start a {name} run",
        "description": (
            f"{description} The input is validated against this workflow's schema (422 names "
            "each bad field). The run is recorded before it is sent to the workers: if the "
            "broker is down it waits, pending, for the recovery sweep."
        ),
        "parameters": [
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": "the same key with the same body again answers 200 with the "
                "same run; the same key with another body is a 409",
            }
        ],
        "requestBody": body,
        "responses": {
            "202": {
                "description": "the run was recorded and sent to the workers",
                "content": {"application/json": {"schema": RUN_REF}},
                "headers": {
                    "Location": {
                        "description": "the run's URL",
                        "schema": {"type": "string"},
                    }
                },
            },
            "200": {
                "description": "replay: the run this Idempotency-Key started",
                "content": {"application/json": {"schema": RUN_REF}},
            },
            "400": error_response("the body is not valid JSON"),
            "409": error_response("Idempotency-Key already used with another body"),
            "413": error_response("the body is larger than MAX_CONTENT_LENGTH"),
            "415": error_response("the body is not declared as JSON"),
            "422": error_response("the input fails validation: details name each bad field"),
        },
    }


KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": "^[^\u0000]*$",
    "description": "as a start's Idempotency-Key: the same key with the same input gives "
    "back the run it started, with another input the batch is a 409; distinct within a batch",
}


def batch_operation(name: str, body_ref: str) -> dict[str, Any]:
    def answer(description: str) -> dict[str, Any]:
        return {"description": description,
                "content": {"application/json": {"schema": BATCH_RESULT_REF}}}

    return {
        "tags": ["workflows"],
        "operationId": f"start_{name}_batch",
        "summary": f"Start up to {BATCH_MAX} {name} runs in one transaction",
        "description": (
            "Every item is validated first; one bad item is a 422 naming it by index "
            '({"items": {"3": {"input": {...}}}}) and nothing is started. The runs and their '
            "steps are recorded in one transaction, then each new run is sent to the workers. "
            "An item whose idempotency_key already started a run with the same input gives "
            "back that run; with another input the whole batch is a 409."
        ),
        "requestBody": {
            "description": f"the {name} runs to start",
            "required": True,
            "content": {"application/json": {"schema": {"$ref": body_ref}}},
        },
        "responses": {
            "202": answer("at least one new run was recorded and sent to the workers"),
            "200": answer("replay: every item's idempotency_key had already started its run"),
            "400": error_response("the body is not valid JSON"),
            "409": error_response("an item's idempotency_key was already used with another input"),
            "413": error_response("the body is larger than MAX_CONTENT_LENGTH"),
            "415": error_response("the body is not declared as JSON"),
            "422": error_response(
                "bad items (each named by index), a key used twice, or more than "
                f"{BATCH_MAX} items; nothing was started"
            ),
        },
    }


def add_batch_operation(spec: Any, name: str, camel: str) -> None:
    """``POST /api/v1/workflows/<name>/batch`` with items of that workflow's input."""
    spec.components.schema(
        f"Batch{camel}Item",
        component={
            "type": "object",
            "description": f"one {name} run to start",
            "properties": {
                "input": {"$ref": f"#/components/schemas/{camel}Input"},
                "idempotency_key": dict(KEY_SCHEMA),
            },
            "required": ["input"],
            "additionalProperties": False,
        },
    )
    spec.components.schema(
        f"Batch{camel}",
        component={
            "type": "object",
            "description": f"the body that starts many {name} runs",
            "properties": {
                "items": {
                    "type": "array",
                    "description": f"1 to {BATCH_MAX} runs to start, all or none",
                    "items": {"$ref": f"#/components/schemas/Batch{camel}Item"},
                    "minItems": 1,
                    "maxItems": BATCH_MAX,
                }
            },
            "required": ["items"],
            "additionalProperties": False,
        },
    )
    spec.path(
        rule=Rule(f"/api/v1/workflows/{name}/batch"),
        operations={"post": batch_operation(name, f"#/components/schemas/Batch{camel}")},
    )


def describe_property(prop: dict[str, Any], required: bool) -> str:
    """A description from a property's own constraints, for fields declared without one."""
    parts = [str(prop.get("type", "any value"))]
    if "format" in prop:
        parts.append({"email": "an email address", "date-time": "an ISO 8601 time with a zone",
                      "uuid": "a UUID"}.get(prop["format"], prop["format"]))
    if "enum" in prop:
        parts.append("one of " + ", ".join(map(str, prop["enum"])))
    if "minLength" in prop or "maxLength" in prop:
        parts.append(f"{prop.get('minLength', 0)} to {prop.get('maxLength', 'any')} characters")
    if "minimum" in prop or "maximum" in prop:
        parts.append(f"from {prop.get('minimum', 'any')} to {prop.get('maximum', 'any')}")
    if "default" in prop:
        parts.append(f"default {prop['default']}")
    parts.append("required" if required else "optional")
    return "; ".join(parts)


# Postgres cannot store NUL in text or jsonb: strings say so in their schema, and
# the published schema is what the API enforces (app.api.input_check)
NO_NUL = "^[^\u0000]*$"
# the addresses marshmallow's Email accepts, in a form JSON Schema can check:
# dot-atom local part, dotted domain, a 2-6 letter top-level domain
EMAIL = (
    "^[A-Za-z0-9_%+-]+(\\.[A-Za-z0-9_%+-]+)*@"
    "([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,6}$"
)


def forbid_nul(node: Any) -> None:
    """Give every string without a pattern of its own the no-NUL pattern, in place."""
    if isinstance(node, list):
        for item in node:
            forbid_nul(item)
    elif isinstance(node, dict):
        if node.get("type") == "string" and "pattern" not in node and "enum" not in node:
            if node.get("format") == "email":
                # tools read format "email" each their own way; the pattern is exact
                node.pop("format")
                node["pattern"] = EMAIL
            else:
                node["pattern"] = NO_NUL
        for value in node.values():
            forbid_nul(value)


def add_start_operations(
    spec: Any, plugin: MarshmallowPlugin, registry: Registry
) -> dict[str, dict[str, Any]]:
    """``POST /api/v1/workflows/<name>`` for every registered workflow, with its input
    schema; returns those input schemas by workflow name (what the API enforces)."""
    assert plugin.converter is not None
    published: dict[str, dict[str, Any]] = {}
    for workflow in registry:
        camel = _camel(workflow.name)
        input_schema = plugin.converter.schema2jsonschema(workflow.input_schema)
        input_schema.setdefault("description", f"the input of a {workflow.name} run")
        for field, prop in input_schema.get("properties", {}).items():
            if not prop.get("description"):
                required = field in input_schema.get("required", [])
                prop["description"] = describe_property(prop, required)
        forbid_nul(input_schema)
        published[workflow.name] = input_schema
        spec.components.schema(f"{camel}Input", component=input_schema)
        spec.components.schema(
            f"Start{camel}",
            component={
                "type": "object",
                "description": f"the body that starts a {workflow.name} run",
                "properties": {
                    # a bare $ref: OpenAPI 3.0 ignores its siblings, so the
                    # description lives on the referenced input schema
                    "input": {"$ref": f"#/components/schemas/{camel}Input"}
                },
                "required": ["input"],
                "additionalProperties": False,
            },
        )
        spec.path(
            # served by the generic /workflows/<name_or_id> rule; flask-smorest's
            # plugin reads the path from a Rule, so it gets one without arguments
            rule=Rule(f"/api/v1/workflows/{workflow.name}"),
            operations={
                "post": start_operation(
                    workflow.name,
                    (workflow.description or "").rstrip(".") + ".",
                    f"#/components/schemas/Start{camel}",
                )
            },
        )
        add_batch_operation(spec, workflow.name, camel)
    return published
