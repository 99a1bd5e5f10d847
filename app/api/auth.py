"""Bearer-token auth for every ``/api`` route when ``API_TOKEN`` is set.

Health and metrics stay open (probes and Prometheus carry no token). The
comparison is constant-time, and the token never reaches a log line: this
module logs nothing, and the request logger never logs headers.
"""

from __future__ import annotations

import hmac

from flask import Flask, request

from app.api.errors import ApiError

PROTECTED_PREFIX = "/api"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stepwise"'}


def token_matches(header: str | None, token: str) -> bool:
    scheme, _, credentials = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def is_protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def install_auth(app: Flask, token: str | None) -> None:
    if not token:
        return

    @app.before_request
    def require_token() -> None:
        if not is_protected(request.path):
            return
        if not token_matches(request.headers.get("Authorization"), token):
            raise ApiError(
                401,
                "unauthorized",
                "send Authorization: Bearer <API_TOKEN>",
                headers=CHALLENGE,
            )
