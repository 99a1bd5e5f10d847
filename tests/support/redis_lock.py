"""A Redis database number per test session or benchmark, so none sees another's keys.

Database 0 is left to ``make run``; 1-15 are taken with a lock key holding
the taker's pid. A lock whose process is gone (a killed run) is taken over.
"""

from __future__ import annotations

import os
import secrets

import redis

LOCK_KEY = "stepwise:test-session-lock"
LOCK_TTL = 3 * 3600


def _holder_alive(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        os.kill(int(value.decode().split(":", 1)[0]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def claim_redis_db(base_url: str) -> int:
    """Take a free database number (1-15) on the Redis at ``base_url`` and empty it."""
    token = f"{os.getpid()}:{secrets.token_hex(4)}"
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{base_url}/{number}")
        try:
            taken = client.set(LOCK_KEY, token, nx=True, ex=LOCK_TTL)
            if not taken and not _holder_alive(client.get(LOCK_KEY)):
                client.set(LOCK_KEY, token, ex=LOCK_TTL)
                taken = client.get(LOCK_KEY) == token.encode()
            if taken:
                # whatever an earlier, killed run left there is stale
                for key in client.scan_iter(count=1000):
                    if key != LOCK_KEY.encode():
                        client.delete(key)
                return number
        finally:
            client.close()
    raise RuntimeError("no free Redis database (1-15)")


def release_redis_db(base_url: str, number: int) -> None:
    client = redis.Redis.from_url(f"{base_url}/{number}")
    try:
        client.flushdb()
    finally:
        client.close()
