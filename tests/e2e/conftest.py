from __future__ import annotations

import uuid
from typing import Any

from tests.support.polling import wait_for


def wait_status(manager: Any, run_id: uuid.UUID, *statuses: str, timeout: float = 30) -> dict:
    def done() -> dict | None:
        run = manager.get(run_id)
        return run if run["status"] in statuses else None

    return wait_for(done, timeout=timeout, what=f"run {run_id} to be {statuses}")


def gate_id() -> str:
    return uuid.uuid4().hex[:10]
