"""The list's page cursor as the API states it: a position anyone can check.

A cursor is ``<created_at in microseconds since the epoch>_<run id>``, the
keyset of the last run on a page. The OpenAPI document gives its exact
pattern, and every string that matches it is a valid position (an empty page
at worst), so the document and the server enforce the same format; the
engine's own cursor stays internal. Converting both ways is lossless.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.engine.manager import decode_cursor, encode_cursor

UUID_PATTERN = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# 16 digits reach the year 2286; every such number is a valid instant
CURSOR_PATTERN = f"^[0-9]{{1,16}}_{UUID_PATTERN}$"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_api(engine_cursor: str | None) -> str | None:
    if engine_cursor is None:
        return None
    created_at, run_id = decode_cursor(engine_cursor)
    micros = (created_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{run_id}"


def from_api(api_cursor: str | None) -> str | None:
    """The engine's cursor for a cursor already checked against ``CURSOR_PATTERN``."""
    if api_cursor is None:
        return None
    micros, _, run_id = api_cursor.partition("_")
    return encode_cursor(EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(run_id))
