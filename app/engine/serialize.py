"""JSON discipline: outputs and inputs are JSON, or the step fails clearly."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from app.engine.errors import OutputNotSerializable


def to_json_value(value: Any, *, where: str) -> Any:
    """Round-trip ``value`` through JSON, naming the offending type on failure."""

    def refuse(obj: Any) -> Any:
        raise OutputNotSerializable(
            f"{where} returned a value of type {type(obj).__module__}.{type(obj).__qualname__}, "
            "which is not JSON-serializable; return dicts, lists, strings, numbers, "
            "booleans or None",
            details={"type": f"{type(obj).__module__}.{type(obj).__qualname__}"},
        )

    try:
        text = json.dumps(value, default=refuse, allow_nan=False)
    except ValueError as exc:  # NaN / Infinity
        raise OutputNotSerializable(f"{where} returned a value JSON cannot hold: {exc}") from None
    return json.loads(text)


def request_hash(payload: Any) -> str:
    """A stable hash of a request body, for idempotency-key comparison."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
