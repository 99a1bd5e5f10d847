"""A workflow written the way a Stepwise user writes one — outside ``app/`` —
registered through ``WORKFLOW_MODULES`` like any other (see docs/writing-workflows.md)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app.engine import RetryPolicy, StepContext, Workflow


class GreetingInput(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=50))
    times = fields.Integer(load_default=1, validate=validate.Range(min=1, max=5))


greeting = Workflow(
    "greeting",
    input_schema=GreetingInput,
    retry=RetryPolicy(max_attempts=2, initial_delay=0.1, jitter=0),
    description="Compose a greeting, then shout it.",
)


@greeting.step()
def compose(ctx: StepContext) -> dict[str, Any]:
    return {"text": " ".join([f"hello {ctx.input['name']}"] * ctx.input["times"])}


@greeting.step(timeout=5)
def shout(ctx: StepContext) -> dict[str, Any]:
    return {"text": ctx.outputs["compose"]["text"].upper() + "!", "run": str(ctx.run_id)}
