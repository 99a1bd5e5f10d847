"""The HTTP API: flask-smorest blueprints, one error shape, auth, request ids.

``init_api(app, settings)`` wires it all into an app; the OpenAPI document is
served at ``/api/openapi.json`` and rendered for people at ``/api/docs``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

# batch adds POST /workflows/<name>/batch to runs.blp when imported, before it is registered
from app.api import batch, definitions, docs, health, runs, workflow_types  # noqa: F401
from app.api.auth import install_auth
from app.api.errors import handle_http_exception, install_error_handlers
from app.api.input_check import InputChecks
from app.api.json_body import install_json_vetting
from app.api.openapi import GENERIC_BATCH, StepwiseDocPlugin, add_start_operations
from app.api.request_context import install_request_context
from app.api.schemas import ErrorSchema
from app.engine.registry import Registry
from app.settings import Settings

API_CONFIG = {
    "API_TITLE": "Stepwise",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
}


class StepwiseApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with our error shape, in the handlers and in the document."""

    ERROR_SCHEMA = ErrorSchema
    # no catch-all "default" response: each operation lists what it answers
    DEFAULT_ERROR_RESPONSE_NAME = None

    def handle_http_exception(self, error: HTTPException) -> Any:
        return handle_http_exception(error)


def init_api(app: Flask, settings: Settings, registry: Registry) -> StepwiseApi:
    app.config.update(API_CONFIG)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # fields in the schema's order
    app.config["STEPWISE_BROKER_URL"] = settings.celery_broker_url
    install_request_context(app)  # first: every later line and error carries the id
    install_auth(app, settings.api_token)
    install_json_vetting(app)  # after auth: a body is read only for a caller who may send it
    token_required = bool(settings.api_token)
    api = StepwiseApi(
        app,
        spec_kwargs={
            "info": {
                "description": "Start, inspect, retry and cancel durable workflow runs. "
                'Every error is {"error": {"code", "message", "details"}}.'
            },
            "extra_plugins": [StepwiseDocPlugin(token_required)],
        },
    )
    if token_required:  # declared only when the server really checks it
        api.spec.components.security_scheme(
            "bearerAuth",
            {"type": "http", "scheme": "bearer", "description": "the deployment's API_TOKEN"},
        )
    for blueprint in (runs.blp, workflow_types.blp, definitions.blp, health.blp):
        api.register_blueprint(blueprint)
    published_inputs = add_start_operations(api.spec, api.ma_plugin, registry)
    # flask-smorest registers a pagination schema that no Stepwise route uses
    api.spec.components.schemas.pop("PaginationMetadata", None)
    # the generic batch rule's only operation is documented per workflow: drop the
    # path item left with nothing but its parameter (apispec has no public remove)
    api.spec._paths.pop(GENERIC_BATCH, None)
    app.register_blueprint(docs.blp)
    install_error_handlers(app)
    app.extensions["stepwise_api"] = api
    app.extensions["stepwise_workflow_types"] = workflow_types.describe_workflows(
        registry, api.ma_plugin
    )
    app.extensions["stepwise_input_checks"] = InputChecks(published_inputs)
    return api
