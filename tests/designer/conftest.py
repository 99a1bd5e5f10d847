"""Fixtures for designed workflows: the app on the session's database, unique names,
and a definition builder."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app


@pytest.fixture(scope="session")
def app(database: str) -> Flask:
    return create_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def unique(prefix: str = "designed") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def email_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"email": {"type": "string", "minLength": 3}, "name": {"type": "string"}},
        "required": ["email"],
        "additionalProperties": False,
    }


def definition(name: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": "made in a test", "input_schema": email_schema(),
            "steps": steps, **extra}


def mail(name: str = "mail", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "action": "send_email",
        "params": {"to": "{{ input.email }}", "subject": "Hello", "body": "Hi {{ input.name }}"},
        **extra,
    }


def save(client: FlaskClient, body: dict[str, Any]) -> Any:
    return client.post("/api/v1/workflow-definitions", json=body)


@pytest.fixture
def make_app_with_token(database: str):  # type: ignore[no-untyped-def]
    from app.settings import get_settings, set_settings

    original = get_settings()
    try:
        yield create_app(original.override(api_token="designer-token"))
    finally:
        set_settings(original)
