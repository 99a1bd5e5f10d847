"""What a JSON value must be before Postgres is asked to store it.

Python's ``json`` accepts more than a JSONB column does, and more than a
request handler can afford: a NUL character (``"\\u0000"``) parses but
JSONB refuses it; ``1e400`` parses to ``inf`` and ``NaN``/``Infinity`` are
accepted literals, neither of which JSON (RFC 8259) or JSONB can hold; 1,100
nested arrays (2 KB) exhaust the recursion limit of every recursive walker
downstream (marshmallow, ``json.dumps``, psycopg2). Each of these reached the
database or the interpreter's stack and came back as a 500.

This module is pure (no Flask, no database) so that the API, the dashboard and
anything else that takes JSON from outside vet it the same way:
``loads`` parses strictly and raises ``Refused``; ``problems`` walks an
already-parsed value (a form turned into a payload) without recursion.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Arrays and objects inside one another. Workflow inputs are shallow records;
# 32 levels is far more than any of them needs and far below the recursion limit.
MAX_DEPTH = 32
# Enough to fix a body in one go, not so many that a hostile body buys a huge answer.
MAX_PROBLEMS = 20

NUL = "contains a NUL character (\\u0000), which cannot be stored"
NOT_FINITE = "is a number out of range (JSON numbers must be finite)"
TOO_DEEP = f"nests arrays and objects deeper than {MAX_DEPTH} levels"

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    path: Path  # keys and list indices from the top of the value
    message: str

    @property
    def where(self) -> str:
        return dotted(self.path)


class Refused(ValueError):
    """A body that is refused, with the HTTP status and stable code to answer with.

    A ``ValueError`` so that werkzeug's ``get_json`` hands it to
    ``on_json_loading_failed`` like any other parse failure.
    """

    def __init__(self, status: int, code: str, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems


def dotted(path: Path) -> str:
    """``("input", "tags", 3)`` → ``input.tags[3]``; the top of the value is ``$``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{_shown(part)}" if out else _shown(part)
    return out or "$"


def _shown(key: str) -> str:
    return key.replace("\x00", "\\u0000")


def problems(value: Any, *, max_depth: int = MAX_DEPTH) -> list[Problem]:
    """Every NUL, non-finite number and over-deep container in ``value`` (at most 20)."""
    found: list[Problem] = []
    for problem in _walk(value, max_depth):
        found.append(problem)
        if len(found) >= MAX_PROBLEMS:
            break
    return found


def _walk(value: Any, max_depth: int) -> Iterator[Problem]:
    # an explicit stack: a deep value must not exhaust the stack of the code vetting it
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if path and isinstance(path[-1], str) and "\x00" in path[-1]:
            yield Problem(path, f"has a key that {NUL}")
        if isinstance(item, str):
            if "\x00" in item:
                yield Problem(path, NUL)
        elif isinstance(item, float):
            if not math.isfinite(item):
                yield Problem(path, NOT_FINITE)
        elif isinstance(item, dict | list):
            if len(path) >= max_depth:
                yield Problem(path, TOO_DEEP)
                continue
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            children = [((*path, str(k) if isinstance(item, dict) else k), v) for k, v in pairs]
            stack.extend(reversed(children))  # report in document order


def _refuse_constant(name: str) -> Any:
    raise Refused(
        400,
        "malformed_json",
        f"the request body is not valid JSON: {name} is not a JSON value "
        "(JSON numbers must be finite)",
        [],
    )


def _int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:  # more digits than int() converts: out of range, like 1e400
        return math.inf


def loads(data: str | bytes) -> Any:
    """Parse JSON text strictly and vet it; ``Refused`` says what is wrong and where.

    400 ``malformed_json`` for what is not JSON (``NaN``, ``Infinity``);
    400 ``json_too_deep`` for nesting past ``MAX_DEPTH``; 422 ``invalid_input``
    for JSON that cannot be stored (NUL characters, numbers out of range),
    naming each place.
    """
    try:
        value = json.loads(data, parse_constant=_refuse_constant, parse_int=_int)
    except RecursionError:
        raise too_deep([Problem((), TOO_DEEP)]) from None
    found = problems(value)
    deep = [p for p in found if p.message == TOO_DEEP]
    if deep:
        raise too_deep(deep)
    if found:
        raise unstorable(found)
    return value


def too_deep(found: list[Problem]) -> Refused:
    return Refused(
        400,
        "json_too_deep",
        f"the request body {TOO_DEEP} (at {found[0].where})",
        found,
    )


def unstorable(found: list[Problem]) -> Refused:
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return Refused(422, "invalid_input", f"{first.where} {first.message}{more}", found)


def details(found: list[Problem]) -> dict[str, Any]:
    """Problems nested by field, the shape marshmallow gives validation errors:
    ``{"input": {"name": ["contains a NUL ..."]}}``."""
    out: dict[str, Any] = {}
    for problem in found:
        if not problem.path:
            out.setdefault("_schema", []).append(problem.message)
            continue
        node = out
        for part in problem.path[:-1]:
            child = node.setdefault(_shown(str(part)), {})
            if not isinstance(child, dict):  # a message already sits here
                break
            node = child
        else:
            messages = node.setdefault(_shown(str(problem.path[-1])), [])
            if isinstance(messages, list):
                messages.append(problem.message)
    return out
