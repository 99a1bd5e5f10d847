"""Celery settings that do not lose work (STYLE §5), derived from ``Settings``."""

from __future__ import annotations

from app.engine.timing import hard_limit, lease_seconds, max_countdown
from app.messaging import ROOT, STATE_DIR, celery_config

__all__ = ["ROOT", "STATE_DIR", "celery_config", "hard_limit", "lease_seconds", "max_countdown"]

