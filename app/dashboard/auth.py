"""Sign-in and CSRF for the dashboard.

The dashboard sits behind the API's token: when ``API_TOKEN`` is set, an
operator signs in once with it, and the signed Flask session cookie keeps a
digest of the token (never the token itself), so rotating the token signs
everyone out. Every POST carries a CSRF token that must match the one in the
session.

The session is signed with ``SECRET_KEY``. When it is unset the key is
derived, not random per process: the web process runs several gunicorn
workers, and a session signed by one worker must be valid on the next. With
``API_TOKEN`` set it is derived from the token (whoever knows the token may
sign in anyway, and rotating it voids old cookies); without a token, where
the dashboard is open and the session only holds the CSRF token, from the
database and broker URLs — still enough against cross-site form posts, since
a foreign page can neither read nor plant the operator's cookie. Set
``SECRET_KEY`` in production all the same.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlparse

from flask import Flask, abort, current_app, redirect, request, session, url_for
from werkzeug.wrappers import Response

from app.settings import Settings

SESSION_AUTH = "auth"
SESSION_CSRF = "csrf"
CSRF_FIELD = "csrf_token"
PUBLIC_ENDPOINTS = frozenset({"dashboard.sign_in", "dashboard.static"})


def session_secret(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    if settings.api_token:
        material = f"api-token:{settings.api_token}"
    else:
        material = f"deployment:{settings.database_url}|{settings.celery_broker_url}"
    return hmac.new(b"stepwise-dashboard-session", material.encode(), "sha256").hexdigest()


def configure_session(app: Flask, settings: Settings) -> None:
    if not app.secret_key:
        app.secret_key = session_secret(settings)
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"


def _token() -> str | None:
    token: str | None = current_app.extensions["stepwise_dashboard"].api_token
    return token


def _digest(token: str) -> str:
    return hashlib.sha256(f"stepwise:{token}".encode()).hexdigest()


def auth_required() -> bool:
    return _token() is not None


def signed_in() -> bool:
    token = _token()
    if token is None:
        return True
    held = session.get(SESSION_AUTH)
    return isinstance(held, str) and hmac.compare_digest(held, _digest(token))


def check_token(candidate: str) -> bool:
    token = _token()
    return token is not None and hmac.compare_digest(candidate.encode(), token.encode())


def sign_in_session() -> None:
    token = _token()
    assert token is not None
    session.clear()
    session[SESSION_AUTH] = _digest(token)
    session[SESSION_CSRF] = secrets.token_urlsafe(32)


def sign_out_session() -> None:
    session.clear()


def csrf_token() -> str:
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return token


def guard() -> Response | None:
    """Blueprint ``before_request``: sign-in first, then CSRF on every POST."""
    if request.endpoint not in PUBLIC_ENDPOINTS and not signed_in():
        if request.endpoint == "dashboard.events" or request.args.get("fragment"):
            abort(401)  # a script's request: a sign-in page would be no answer
        return redirect(url_for("dashboard.sign_in", next=request.full_path.rstrip("?")))
    if request.method == "POST":
        expected = session.get(SESSION_CSRF)
        sent = request.form.get(CSRF_FIELD, "")
        if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
            abort(400, "The form expired or did not come from this dashboard; reload the page.")
    return None


def safe_next(target: str | None) -> str:
    """Only same-site paths: a sign-in link must not redirect elsewhere."""
    if not target:
        return url_for("dashboard.runs")
    parts = urlparse(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.runs")
    return target
