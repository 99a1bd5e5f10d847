"""What the Redis broker holds for one run: queued messages (the default queue
and every per-step queue) and unacked ones a worker holds, e.g. a countdown.

Counted per run, not in total: a worker an earlier test SIGKILLed leaves its
unacked messages in Redis until the visibility timeout restores them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import redis as redis_lib

from tests.support.environment import REDIS_URL


def _mentions(raw: bytes | str, needle: str) -> bool:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    if needle in text:
        return True
    try:
        message = json.loads(text)
        if isinstance(message, list):  # unacked entries are [message, exchange, routing key]
            message = message[0]
        body = base64.b64decode(message.get("body", "")).decode(errors="replace")
    except (ValueError, AttributeError, TypeError):
        return False
    return needle in body


def messages_for(run_id: Any) -> int:
    broker = redis_lib.Redis.from_url(REDIS_URL)
    needle = str(run_id)
    queues = [b"celery", *broker.scan_iter(match="stepwise.*", _type="list")]
    held = sum(1 for q in queues for raw in broker.lrange(q, 0, -1) if _mentions(raw, needle))
    return held + sum(1 for raw in broker.hvals("unacked") if _mentions(raw, needle))
