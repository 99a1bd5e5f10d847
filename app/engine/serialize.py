"""JSON discipline: outputs and inputs are JSON, or the step fails clearly."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from app.engine.errors import OutputNotSerializable


def find_nul(value: Any, path: str = "$") -> str | None:
    """The path of the first string (or key) holding a NUL character, which JSONB refuses."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return f"{path} (a key)"
            found = find_nul(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = find_nul(item, f"{path}[{i}]")
            if found:
                return found
    return None


def to_json_value(value: Any, *, where: str, for_postgres: bool = False) -> Any:
    """Round-trip ``value`` through JSON, naming the offending type on failure.

    ``for_postgres``: also refuse what JSON allows and JSONB does not (NUL).
    """

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
    loaded = json.loads(text)
    if for_postgres:
        nul = find_nul(loaded)
        if nul is not None:
            raise OutputNotSerializable(
                f"{where} returned a string with a NUL character (\\u0000) at {nul}, which "
                "Postgres cannot store",
                details={"path": nul},
            )
    return loaded


def request_hash(payload: Any) -> str:
    """A stable hash of a request body, for idempotency-key comparison."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
