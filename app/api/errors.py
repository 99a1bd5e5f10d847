"""One JSON error shape for every error the web app returns (DESIGN §5).

    {"error": {"code": "...", "message": "...", "details": {...}}}

Engine errors (``StepwiseError``), HTTP errors raised by Flask, werkzeug,
webargs or flask-smorest (404, 405, 413, 415, 422 ...), a database that cannot
be reached (503) and anything unexpected (500) all go through ``render``, so a
client never sees an HTML page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy.exc
import structlog
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from app.engine.errors import (
    IdempotencyConflict,
    IllegalTransition,
    InvalidInput,
    RunNotFound,
    StepwiseError,
    UnknownWorkflow,
)

log = structlog.get_logger("stepwise.api")

ENGINE_STATUS: dict[type[StepwiseError], int] = {
    UnknownWorkflow: 404,
    RunNotFound: 404,
    InvalidInput: 422,
    IllegalTransition: 409,
    IdempotencyConflict: 409,
}

HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    431: "request_header_fields_too_large",
    500: "internal_error",
    503: "service_unavailable",
}

# headers werkzeug computes for an error that the client needs (Allow on 405 ...)
_KEPT_HEADERS = {"allow", "www-authenticate", "retry-after"}


class ApiError(Exception):
    """An error raised by the web layer itself (auth, content type, bad JSON)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def render(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    response = jsonify(
        {"error": {"code": code, "message": message, "details": dict(details or {})}}
    )
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def flatten_locations(messages: Mapping[str, Any]) -> dict[str, Any]:
    """webargs nests messages by location ({"query": {"limit": [...]}}); name the fields."""
    details: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, Mapping):
            details.update(fields)
        else:
            details[location] = fields
    return details


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}  # set by webargs/flask-smorest abort
    messages = data.get("messages") or data.get("errors")
    details = flatten_locations(messages) if isinstance(messages, Mapping) else {}
    if status == 422:
        fields = ", ".join(sorted(details)) or "the request"
        message = f"invalid value for {fields}"
    elif status == 400 and "json" in details:
        return render(400, "malformed_json", "the request body is not valid JSON")
    else:
        message = data.get("message") or error.description or error.name
    headers = {name: value for name, value in error.get_headers() if name.lower() in _KEPT_HEADERS}
    headers.update(data.get("headers") or {})
    if status >= 500:
        log.error("http error", status=status, error=error.name)
    return render(
        status,
        HTTP_CODES.get(status, error.name.lower().replace(" ", "_")),
        str(message),
        details,
        headers,
    )


def handle_api_error(error: ApiError) -> Response:
    return render(error.status, error.code, error.message, error.details, error.headers)


def handle_engine_error(error: StepwiseError) -> Response:
    for cls, status in ENGINE_STATUS.items():
        if isinstance(error, cls):
            return render(status, error.code, error.message, error.details)
    log.error("unexpected engine error", error=repr(error))
    return render(500, "internal_error", "internal server error")


def handle_database_unavailable(error: sqlalchemy.exc.SQLAlchemyError) -> Response:
    """The database is down or unreachable: the client may try again later."""
    log.error("database unavailable", error=type(error).__name__, detail=str(error)[:500])
    return render(
        503,
        "database_unavailable",
        "the database is unavailable; try again later",
        {"dependency": "database"},
        {"Retry-After": "5"},
    )


def handle_unexpected(error: Exception) -> Response:
    if _is_connection_error(error):
        assert isinstance(error, sqlalchemy.exc.SQLAlchemyError)
        return handle_database_unavailable(error)
    log.exception("unhandled error", error=type(error).__name__)
    return render(500, "internal_error", "internal server error")


def _is_connection_error(error: Exception) -> bool:
    if isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.TimeoutError):
        return True
    return isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated


def install_error_handlers(app: Flask) -> None:
    """Register the handlers on the app, so routing errors (404/405) use them too."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(StepwiseError, handle_engine_error)
    app.register_error_handler(Exception, handle_unexpected)
