"""The Celery application: ``celery -A workers worker|beat|inspect|flower``."""

from workers.celery_app import app

celery = app

__all__ = ["app", "celery"]
