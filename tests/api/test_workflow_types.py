"""GET /api/v1/workflow-types."""

from __future__ import annotations


def test_lists_each_workflow_with_its_steps_and_input_json_schema(client):
    response = client.get("/api/v1/workflow-types")
    assert response.status_code == 200
    types = {t["name"]: t for t in response.get_json()["items"]}
    assert {"signup", "flaky", "gated"} <= set(types)
    signup = types["signup"]
    assert signup["description"].startswith("Create the account")
    assert [(s["name"], s["position"], s["transactional"]) for s in signup["steps"]] == [
        ("create_user", 0, True),
        ("provision_plan", 1, False),
        ("send_welcome_email", 2, False),
        ("notify_team", 3, False),
        ("send_welcome_sms", 4, False),
    ]
    schema = signup["input_schema"]
    assert schema["type"] == "object"
    assert sorted(schema["required"]) == ["email", "name", "plan"]
    assert schema["properties"]["email"]["format"] == "email"
    assert schema["properties"]["plan"]["enum"] == ["free", "pro"]
    assert schema["properties"]["name"] == {"type": "string", "minLength": 1, "maxLength": 200}


def test_the_described_schema_is_the_one_that_validates(client):
    """An input the JSON Schema forbids (name too long) is refused by POST."""
    types = {t["name"]: t for t in client.get("/api/v1/workflow-types").get_json()["items"]}
    limit = types["signup"]["input_schema"]["properties"]["name"]["maxLength"]
    response = client.post(
        "/api/v1/workflows/signup",
        json={"input": {"email": "x@example.com", "name": "n" * (limit + 1), "plan": "free"}},
    )
    assert response.status_code == 422
    assert set(response.get_json()["error"]["details"]["input"]) == {"name"}
