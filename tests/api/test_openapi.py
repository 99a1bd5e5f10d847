"""GET /api/openapi.json describes every route as it behaves; /api/docs shows it to people."""

from __future__ import annotations

import re

from app.engine.registry import registry
from tests.api.conftest import RUN_KEYS

ROUTES = {
    ("/api/v1/workflows", "get"): "200",
    ("/api/v1/workflows/{name_or_id}", "get"): "200",
    ("/api/v1/workflows/{run_id}/retry", "post"): "202",
    ("/api/v1/workflows/{run_id}/cancel", "post"): "202",
    ("/api/v1/workflows/bulk/retry", "post"): "200",
    ("/api/v1/workflows/bulk/cancel", "post"): "200",
    ("/api/v1/workflows/{run_id}/signals/{signal}", "post"): "202",
    ("/api/v1/workflows/{run_id}/fork", "post"): "202",
    ("/api/v1/workflow-types", "get"): "200",
    ("/api/v1/actions", "get"): "200",
    ("/api/v1/workflow-definitions", "get"): "200",
    ("/api/v1/workflow-definitions", "post"): "201",
    ("/api/v1/workflow-definitions/{name}", "get"): "200",
    ("/healthz", "get"): "200",
    ("/readyz", "get"): "200",
}


def starts() -> dict[tuple[str, str], str]:
    """A start and a batch start per registered workflow."""
    return {
        (path, "post"): "202"
        for w in registry
        for path in (f"/api/v1/workflows/{w.name}", f"/api/v1/workflows/{w.name}/batch")
    }


def resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = spec["components"][kind][name]
    return node


def document(make_app, token: str | None) -> dict:
    client = make_app(api_token=token).test_client()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/api/openapi.json", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def operations(spec: dict):  # type: ignore[no-untyped-def]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method != "parameters":
                yield path, method, op


def test_every_route_and_every_registered_workflow_has_an_operation(make_app):
    spec = document(make_app, None)
    assert spec["openapi"].startswith("3.")
    documented = {(p, m) for p, m, _ in operations(spec)}
    assert documented == set(ROUTES) | set(starts())
    for (path, method), success in {**ROUTES, **starts()}.items():
        operation = spec["paths"][path][method]
        body = resolve(spec, operation["responses"][success])
        assert "schema" in body["content"]["application/json"], (path, method)
        assert "default" not in operation["responses"], (path, method)
    run = spec["components"]["schemas"]["Run"]
    assert set(run["properties"]) == RUN_KEYS
    list_params = {p["name"] for p in spec["paths"]["/api/v1/workflows"]["get"]["parameters"]}
    assert list_params == {
        "status",
        "name",
        "error_type",
        "created_after",
        "created_before",
        "id_prefix",
        "idempotency_key",
        "limit",
        "cursor",
    }
    bulk = spec["paths"]["/api/v1/workflows/bulk/retry"]["post"]
    bulk_body = resolve(spec, bulk["requestBody"]["content"]["application/json"]["schema"])
    assert set(bulk_body["properties"]) == {
        "name", "status", "error_type", "created_after", "created_before", "limit"
    }


def test_each_start_operation_takes_its_workflows_own_input_schema(make_app):
    spec = document(make_app, None)
    start = spec["paths"]["/api/v1/workflows/signup"]["post"]
    body = resolve(spec, start["requestBody"]["content"]["application/json"]["schema"])
    assert body["required"] == ["input"] and body["additionalProperties"] is False
    signup = resolve(spec, body["properties"]["input"])
    assert set(signup["properties"]) == {"email", "name", "plan", "phone"}
    assert set(signup["required"]) == {"email", "name", "plan"}
    assert signup["properties"]["plan"]["enum"] == ["free", "pro"]
    assert signup["properties"]["phone"]["pattern"] == r"^\+[1-9][0-9]{6,14}$"
    assert {p["name"] for p in start["parameters"]} == {"Idempotency-Key"}
    assert set(start["responses"]) == {"200", "202", "400", "409", "413", "415", "422", "503"}
    links = start["responses"]["202"]["links"]
    assert set(links) == {"GetRun", "RetryRun", "CancelRun"}
    assert links["GetRun"]["parameters"] == {"name_or_id": "$response.body#/id"}


def test_each_batch_operation_takes_items_of_its_workflows_input(make_app):
    spec = document(make_app, None)
    operation = spec["paths"]["/api/v1/workflows/signup/batch"]["post"]
    body = resolve(spec, operation["requestBody"]["content"]["application/json"]["schema"])
    assert body["required"] == ["items"] and body["additionalProperties"] is False
    items = body["properties"]["items"]
    assert (items["minItems"], items["maxItems"]) == (1, 1000)
    item = resolve(spec, items["items"])
    assert set(item["properties"]) == {"input", "idempotency_key"} and item["required"] == ["input"]
    assert resolve(spec, item["properties"]["input"]) == resolve(
        spec, resolve(spec, spec["paths"]["/api/v1/workflows/signup"]["post"]["requestBody"][
            "content"]["application/json"]["schema"])["properties"]["input"])
    assert set(operation["responses"]) == {"200", "202", "400", "409", "413", "415", "422", "503"}
    result = resolve(spec, operation["responses"]["202"]["content"]["application/json"]["schema"])
    assert set(result["properties"]) == {"items", "created"}
    # the generic rule serves any name but is documented per workflow only
    assert "/api/v1/workflows/{name}/batch" not in spec["paths"]


def test_without_a_token_the_document_declares_no_security_and_no_401(make_app):
    spec = document(make_app, None)
    assert "security" not in spec
    assert "securitySchemes" not in spec.get("components", {})
    for path, method, op in operations(spec):
        assert "401" not in op["responses"], (path, method)
        assert op.get("security") in (None, []), (path, method)


def test_with_a_token_every_api_operation_requires_it_and_documents_401(make_app):
    spec = document(make_app, "a-token")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, method, op in operations(spec):
        if path.startswith("/api/"):
            assert op["security"] == [{"bearerAuth": []}], (path, method)
            assert resolve(spec, op["responses"]["401"])["content"]["application/json"]
        else:  # probes stay open
            assert op.get("security") in (None, []) and "401" not in op["responses"]


def test_the_cursor_pattern_is_what_the_server_accepts(client, make_app):
    spec = document(make_app, None)
    [cursor] = [p for p in spec["paths"]["/api/v1/workflows"]["get"]["parameters"]
                if p["name"] == "cursor"]
    pattern = re.compile(cursor["schema"]["pattern"])
    page = client.get("/api/v1/workflows?limit=1").get_json()
    if page["next_cursor"]:
        assert pattern.match(page["next_cursor"])
    made_up = "1700000000000000_00000000-0000-0000-0000-000000000000"
    assert pattern.match(made_up)
    assert client.get(f"/api/v1/workflows?cursor={made_up}").status_code == 200


def test_every_parameter_and_field_has_a_description(make_app):
    spec = document(make_app, "a-token")
    missing = []
    for path, method, op in operations(spec):
        for parameter in op.get("parameters", []) + spec["paths"][path].get("parameters", []):
            if not parameter.get("description"):
                missing.append(f"{method} {path} {parameter['name']}")
    for name, schema in spec["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            if not (prop.get("description") or "$ref" in prop):
                missing.append(f"{name}.{field}")
    assert missing == []


def test_docs_page_is_html_with_descriptions_and_no_raw_references(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for path, _ in {**ROUTES, **starts()}:
        assert f"<code>{path}</code>" in page
    assert "/api/openapi.json" in page
    assert "#/components/" not in page and "`" not in page
    assert "optional mobile number in E.164" in page  # a field's description
    assert "the most runs on one page" in page  # a parameter's description
