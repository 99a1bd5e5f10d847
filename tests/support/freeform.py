"""A workflow whose input takes any JSON (``fields.Raw``), registered only while a test runs.

Every bundled workflow's schema types its fields, so a NUL character, a
non-finite number or a deep structure usually meets a "Not a valid string"
first. A free-form field carries such a value all the way to the JSONB
column, which is where the 500s of issue 12 (item 11) came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from marshmallow import Schema, fields

from app.engine import StepContext, Workflow
from app.engine.registry import Registry

NAME = "freeform_probe"


class FreeformInput(Schema):
    data = fields.Raw(allow_none=True, metadata={"description": "any JSON"})


freeform = Workflow(NAME, input_schema=FreeformInput, register=False)


@freeform.step()
def keep(ctx: StepContext) -> dict[str, Any]:
    return {"kept": True}


freeform.freeze()


@contextmanager
def freeform_registered(registry: Registry) -> Iterator[Workflow]:
    registry.add(freeform)
    try:
        yield freeform
    finally:
        registry.remove(NAME)


def run_count(engine: sa.Engine) -> int:
    """Every run in the database: a refused request must leave it unchanged."""
    with engine.connect() as c:
        return int(c.execute(sa.text("SELECT count(*) FROM workflow_runs")).scalar_one())
