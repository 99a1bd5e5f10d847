"""The Celery application: ``celery -A workers worker|beat|inspect|flower``.

A configuration error becomes one line naming the variable (and exit status
1): Celery would otherwise print its "Unable to load celery application"
banner around an 80-line traceback.
"""

from app.settings import ConfigError

try:
    from workers.celery_app import app
except ConfigError as exc:
    raise SystemExit(f"stepwise: configuration error: {exc}") from None

celery = app

__all__ = ["app", "celery"]
