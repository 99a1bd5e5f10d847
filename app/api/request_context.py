"""A request id for every request, bound into structlog's context.

A valid ``X-Request-ID`` from the client (or a proxy) is kept, else one is
made; it is echoed in the response and carried by every log line written while
the request is served, so one grep follows a request through the web logs.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = structlog.get_logger("stepwise.web")


def request_id_from(value: str | None) -> str:
    if value and _VALID.match(value):
        return value
    return uuid.uuid4().hex


def install_request_context(app: Flask) -> None:
    @app.before_request
    def bind_request_id() -> None:
        structlog.contextvars.clear_contextvars()
        g.request_id = request_id_from(request.headers.get(HEADER))
        g.request_started = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @app.after_request
    def log_request(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id is not None:
            response.headers[HEADER] = request_id
            log.info(
                "request",
                method=request.method,
                path=request.path,
                status=response.status_code,
                duration_ms=round((time.perf_counter() - g.request_started) * 1000, 2),
            )
        return response

    @app.teardown_request
    def unbind_request_id(_: BaseException | None) -> None:
        structlog.contextvars.clear_contextvars()
