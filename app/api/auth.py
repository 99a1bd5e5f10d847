"""Bearer-token auth for every ``/api`` route when ``API_TOKEN`` is set.

Health and metrics stay open (probes and Prometheus carry no token). The
comparison is constant-time, and the token never reaches a log line: this
module logs nothing, and the request logger never logs headers.

The API's documentation (``GET /api/docs`` and ``/api/openapi.json``) is also
readable with a signed-in dashboard session, so an operator can open it from
the browser: a browser cannot add a Bearer header to a link. Those two
reads only — every other route, and every write, still needs the header,
so the session cookie never becomes a way to act through the API (no CSRF
surface). The dashboard registers the session check as
``app.extensions["stepwise_session_signed_in"]``; the API does not import it.
"""

from __future__ import annotations

import hmac

from flask import Flask, current_app, request

from app.api.errors import ApiError

PROTECTED_PREFIX = "/api"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stepwise"'}
SESSION_READABLE = frozenset({"/api/docs", "/api/openapi.json"})
SESSION_CHECK = "stepwise_session_signed_in"


def token_matches(header: str | None, token: str) -> bool:
    scheme, _, credentials = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def is_protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def session_may_read() -> bool:
    """A signed-in dashboard session reading the API's documentation."""
    if request.method not in ("GET", "HEAD") or request.path not in SESSION_READABLE:
        return False
    check = current_app.extensions.get(SESSION_CHECK)
    return bool(check is not None and check())


def install_auth(app: Flask, token: str | None) -> None:
    if not token:
        return

    @app.before_request
    def require_token() -> None:
        if not is_protected(request.path):
            return
        if token_matches(request.headers.get("Authorization"), token):
            return
        if not session_may_read():
            raise ApiError(
                401,
                "unauthorized",
                "send Authorization: Bearer <API_TOKEN>",
                headers=CHALLENGE,
            )
