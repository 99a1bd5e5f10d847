"""The designer's API: the blocks, validation that names each problem, versions, types."""

from __future__ import annotations

import threading
from typing import Any

from tests.api.conftest import assert_error
from tests.designer.conftest import definition, mail, save, unique


def problems(response: Any) -> list[dict[str, str]]:
    error = assert_error(response, 422, "invalid_definition")
    return list(error["details"]["problems"])


def codes_at(response: Any) -> set[tuple[str, str]]:
    return {(p["where"], p["code"]) for p in problems(response)}


def test_actions_lists_each_block_with_a_json_schema_of_its_params(client):
    body = client.get("/api/v1/actions").get_json()
    found = {a["name"]: a for a in body["items"]}
    assert {"send_email", "send_sms", "notify_chat", "http_request", "sleep",
            "wait_for_signal"} <= set(found)
    assert set(found["send_email"]["params"]["required"]) == {"to", "subject", "body"}
    assert set(found["send_sms"]["params"]["properties"]) == {"to", "body"}
    assert set(found["notify_chat"]["params"]["properties"]) == {"text"}
    assert set(found["http_request"]["params"]["properties"]) == {"method", "url", "json"}
    assert set(found["sleep"]["params"]["properties"]) == {"seconds"}
    assert set(found["wait_for_signal"]["params"]["properties"]) == {"signal", "timeout"}
    for action in found.values():
        assert action["description"] and action["params"]["type"] == "object"
    assert not any(found[n]["reusable"] for n in ("send_email", "sleep", "wait_for_signal"))


def test_a_code_defined_step_declared_reusable_is_offered_as_a_block(client):
    block = next(a for a in client.get("/api/v1/actions").get_json()["items"]
                 if a["name"] == "create_billing_customer")
    assert block["reusable"] is True
    assert block["description"].startswith("Create a billing customer")
    assert set(block["params"]["required"]) == {"email", "name"}
    # its params are checked like a built-in's, and its outputs are known to templates
    response = save(client, definition(unique(), [
        {"name": "bill", "action": "create_billing_customer", "params": {"email": "{{ input.email }}",
                                                                         "plan": "pro"}},
        {"name": "tell", "action": "notify_chat", "after": ["bill"],
         "params": {"text": "{{ steps.bill.customer_id }} {{ steps.bill.invoice_id }}"}},
    ]))
    found = {(p["where"], p["code"], p["message"]) for p in problems(response)}
    assert ("steps.bill.params", "bad_params", "'name' is a required property") in found
    assert any(w == "steps.bill.params" and "'plan' was unexpected" in m for w, _, m in found)
    assert {(w, c) for w, c, _ in found if w == "steps.tell.params.text"} == {
        ("steps.tell.params.text", "unknown_output_field")}


def test_a_new_name_is_version_one_and_each_save_adds_one(client):
    name = unique()
    first = save(client, definition(name, [mail()]))
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["version"] == 1
    second = save(client, definition(name, [mail(), mail("again", after=["mail"])]))
    assert second.get_json()["version"] == 2
    versions = client.get(f"/api/v1/workflow-definitions/{name}").get_json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    assert [s["name"] for s in versions[0]["steps"]] == ["mail", "again"]
    listed = client.get("/api/v1/workflow-definitions").get_json()["items"]
    assert [d["version"] for d in listed if d["name"] == name] == [2]


def test_two_concurrent_saves_of_one_name_get_different_versions(app):
    name = unique()
    versions: list[int] = []
    barrier = threading.Barrier(6)

    def one() -> None:
        client = app.test_client()
        barrier.wait()
        response = save(client, definition(name, [mail()]))
        versions.append(response.get_json()["version"])

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]


def test_unknown_definition_is_a_404(client):
    assert_error(client.get(f"/api/v1/workflow-definitions/{unique()}"), 404, "not_found")


def test_unknown_action_and_bad_params_are_each_named(client):
    response = save(client, definition(unique(), [
        {"name": "a", "action": "launch_rocket", "params": {}},
        {"name": "b", "action": "send_email", "params": {"to": "x@example.com", "subject": 5,
                                                         "colour": "red"}},
        {"name": "c", "action": "sleep", "params": {"seconds": -1}},
    ]))
    found = codes_at(response)
    assert ("steps.a.action", "unknown_action") in found
    assert ("steps.b.params.subject", "bad_params") in found  # 5 is not a string
    assert ("steps.b.params", "bad_params") in found  # body missing, colour unknown
    assert ("steps.c.params.seconds", "bad_params") in found
    messages = " ".join(p["message"] for p in problems(response))
    assert "launch_rocket" in messages and "body" in messages and "colour" in messages


def test_unknown_and_cyclic_predecessors_are_each_named(client):
    response = save(client, definition(unique(), [
        mail("a", after=["c"]),
        mail("b", after=["a"]),
        mail("c", after=["b"]),
        mail("d", after=["ghost"]),
        mail("e", after=["e"]),
    ]))
    found = codes_at(response)
    assert ("steps.d.after", "unknown_after") in found
    assert ("steps.e.after", "cyclic_after") in found
    cycle = [p for p in problems(response) if p["code"] == "cyclic_after" and "circle" in p["message"]]
    assert len(cycle) == 1 and all(s in cycle[0]["message"] for s in ("a", "b", "c"))


def test_templates_naming_a_missing_field_or_step_are_each_named(client):
    response = save(client, definition(unique(), [
        mail("first"),
        {"name": "second", "action": "send_email", "after": ["first"], "params": {
            "to": "{{ input.mail_address }}",
            "subject": "{{ steps.nowhere.message_id }}",
            "body": "{{ steps.first.colour }} {{ steps.third.message_id }} {{ settings.api_token }}",
        }},
        mail("third"),
        {"name": "fourth", "action": "notify_chat", "after": ["first"],
         "when": {"path": "input.plan", "equals": "pro"}, "params": {"text": "hi"}},
    ]))
    found = codes_at(response)
    assert ("steps.second.params.to", "unknown_input_field") in found
    assert ("steps.second.params.subject", "unknown_step") in found
    body = {p["code"] for p in problems(response) if p["where"] == "steps.second.params.body"}
    assert body == {"unknown_output_field", "step_not_before", "bad_template"}
    assert ("steps.fourth.when", "unknown_input_field") in found


def test_a_name_of_a_code_defined_workflow_is_refused(client):
    found = codes_at(save(client, definition("signup", [mail()])))
    assert ("name", "name_taken") in found


def test_bad_names_schema_conditions_and_hosts_are_each_named(client):
    response = save(client, {
        "name": "Not A Name", "input_schema": {"type": "string"},
        "steps": [
            {"name": "call", "action": "http_request",
             "params": {"url": "http://169.254.169.254/latest/meta-data"}},
            {"name": "Bad-Step", "action": "sleep", "params": {"seconds": 1}},
            {"name": "note", "action": "notify_chat", "params": {"text": "x"},
             "when": {"path": "steps.call.status", "greater": 3}},
        ],
    })
    found = codes_at(response)
    assert {("name", "bad_name"), ("input_schema", "bad_input_schema"),
            ("steps.call.params.url", "host_not_allowed"), ("steps.Bad-Step.name", "bad_step_name"),
            ("steps.note.when", "bad_condition")} <= found


def test_dry_run_validates_without_saving(client):
    name = unique()
    ok = client.post("/api/v1/workflow-definitions?dry_run=true", json=definition(name, [mail()]))
    assert ok.status_code == 200 and ok.get_json() == {"problems": []}
    assert client.get(f"/api/v1/workflow-definitions/{name}").status_code == 404
    bad = client.post("/api/v1/workflow-definitions?dry_run=true",
                      json=definition(name, [mail(after=["x"])]))
    assert ("steps.mail.after", "unknown_after") in codes_at(bad)


def test_a_saved_definition_is_a_workflow_type_with_its_graph(client):
    name = unique()
    save(client, definition(name, [
        mail(),
        {"name": "wait", "action": "wait_for_signal", "after": ["mail"],
         "params": {"signal": "confirmed", "timeout": 60}},
        {"name": "nap", "action": "sleep", "after": ["wait"], "params": {"seconds": 5},
         "when": {"path": "steps.wait.timed_out", "exists": False}},
    ]))
    types = {t["name"]: t for t in client.get("/api/v1/workflow-types").get_json()["items"]}
    assert "signup" in types
    shown = types[name]
    assert shown["signals"] == ["confirmed"]
    assert [(s["name"], s["after"], s["kind"], s["conditional"]) for s in shown["steps"]] == [
        ("mail", [], "task", False), ("wait", ["mail"], "signal", False),
        ("nap", ["wait"], "sleep", True),
    ]
    assert shown["input_schema"]["required"] == ["email"]


def test_starting_a_designed_workflow_validates_its_input_schema(client):
    name = unique()
    save(client, definition(name, [mail()]))
    bad = client.post(f"/api/v1/workflows/{name}", json={"input": {"email": 7, "extra": 1}})
    error = assert_error(bad, 422, "invalid_input")
    assert set(error["details"]["input"]) == {"email", "extra"}
    good = client.post(f"/api/v1/workflows/{name}", json={"input": {"email": "a@example.com"}})
    assert good.status_code == 202, good.get_json()
    run = good.get_json()
    assert run["name"] == name and [s["name"] for s in run["steps"]] == ["mail"]
    listed = client.get(f"/api/v1/workflows?name={name}").get_json()["items"]
    assert [r["id"] for r in listed] == [run["id"]]
    client.post(f"/api/v1/workflows/{run['id']}/cancel")


def test_the_api_token_guards_the_designer_routes(make_app_with_token):
    client = make_app_with_token.test_client()
    for path in ("/api/v1/actions", "/api/v1/workflow-definitions"):
        assert_error(client.get(path), 401, "unauthorized")
    assert_error(save(client, definition(unique(), [mail()])), 401, "unauthorized")
    ok = client.get("/api/v1/actions", headers={"Authorization": "Bearer designer-token"})
    assert ok.status_code == 200
