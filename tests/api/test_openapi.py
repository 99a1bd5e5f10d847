"""GET /api/openapi.json describes every route; /api/docs shows it to people."""

from __future__ import annotations

from tests.api.conftest import RUN_KEYS

ROUTES = {
    ("/api/v1/workflows", "get"): "200",
    ("/api/v1/workflows/{name_or_id}", "get"): "200",
    ("/api/v1/workflows/{name_or_id}", "post"): "202",
    ("/api/v1/workflows/{run_id}/retry", "post"): "202",
    ("/api/v1/workflows/{run_id}/cancel", "post"): "202",
    ("/api/v1/workflows/bulk/retry", "post"): "200",
    ("/api/v1/workflows/bulk/cancel", "post"): "200",
    ("/api/v1/workflows/{run_id}/signals/{signal}", "post"): "202",
    ("/api/v1/workflow-types", "get"): "200",
    ("/healthz", "get"): "200",
    ("/readyz", "get"): "200",
}


def resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = spec["components"][kind][name]
    return node


def test_every_route_has_its_success_and_error_schemas(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(p, m) for p, ops in spec["paths"].items() for m in ops if m != "parameters"}
    assert documented == set(ROUTES)
    error_schema = spec["components"]["schemas"]["Error"]
    assert error_schema["required"] == ["error"]
    for (path, method), success in ROUTES.items():
        operation = spec["paths"][path][method]
        body = resolve(spec, operation["responses"][success])
        assert "schema" in body["content"]["application/json"], (path, method)
        default = resolve(spec, operation["responses"]["default"])
        assert default["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    start = spec["paths"]["/api/v1/workflows/{name_or_id}"]["post"]
    assert start["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StartRun"
    }
    assert {p["name"] for p in start["parameters"]} == {"Idempotency-Key"}
    assert set(start["responses"]) >= {"200", "202", "400", "404", "409", "413", "415", "422"}
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
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_docs_page_is_html_listing_every_route(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for path, _ in ROUTES:
        assert f"<code>{path}</code>" in page
    assert "/api/openapi.json" in page
