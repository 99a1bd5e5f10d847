"""Periodic jobs: the one place they are declared. ``workers`` loads this file.

Beat keeps its own state in ``var/`` (see ``workers/config.py``), never here.
Scheduled workflows use ``scheduled_workflow(...)`` with an ``every(...)`` or a
``crontab(...)`` schedule: each slot starts exactly one run, however many beat
processes run (see docs/operations.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.scheduling import parse_schedule, scheduled_workflow


def build_schedule(settings: Any) -> dict[str, dict[str, Any]]:
    recovery_every = settings.workflow_recovery_interval
    return {
        # re-send stalled runs from Postgres; dead-letter the ones that keep crashing
        "recovery-sweep": {
            "task": "stepwise.recover",
            "schedule": timedelta(seconds=recovery_every),
            # a sweep older than its interval is stale; the next one supersedes it
            "options": {"expires": max(recovery_every, 1.0)},
        },
        # delete finished runs older than WORKFLOW_CLEANUP_RETENTION
        "cleanup-finished-runs": {
            "task": "stepwise.cleanup",
            "schedule": timedelta(hours=1),
            "options": {"expires": 3600},
        },
        # the day's signup count to the team chat (SIGNUP_DIGEST_SCHEDULE, default 00:00 UTC)
        "signup-digest": scheduled_workflow(
            "signup_digest", parse_schedule(settings.signup_digest_schedule)
        ),
    }
