"""Workflows that wait, branch, join and undo, for the tests of those primitives.

Loaded by the test session and its workers through ``WORKFLOW_MODULES``. Each
body counts its executions in Redis (``tests.support.workflows.count``) so
tests can assert that nothing ran twice; ``gate`` inputs let a test hold a
step mid-body (for a SIGKILL).
"""

from __future__ import annotations

import time
from typing import Any

from marshmallow import Schema, fields

from app.engine import NonRetryableError, RetryPolicy, StepContext, Workflow
from tests.support.workflows import count, store, wait_gate


class WaitsInput(Schema):
    gate = fields.String(load_default="")
    timeout = fields.Float(load_default=60.0)
    nap = fields.Float(load_default=0.0)


waits = Workflow(
    "waits",
    input_schema=WaitsInput,
    signals=("go",),
    description="A step, a wait for signal 'go', a step on its payload, a durable sleep, a step.",
)


@waits.step(timeout=30)
def before(ctx: StepContext) -> dict[str, Any]:
    if ctx.input.get("gate"):
        wait_gate(ctx, ctx.input["gate"])
    return {"n": count(ctx)}


waits.wait_for_signal("wait_go", signal="go", timeout=lambda ctx: ctx.input["timeout"])


@waits.step(when=lambda ctx: not ctx.outputs["wait_go"].get("timed_out"))
def on_signal(ctx: StepContext) -> dict[str, Any]:
    count(ctx)
    return {"got": ctx.outputs["wait_go"]}


waits.sleep("nap", seconds=lambda ctx: ctx.input["nap"], after=["on_signal"])


@waits.step()
def woke(ctx: StepContext) -> dict[str, Any]:
    count(ctx)
    store().rpush(f"woke:{ctx.run_id}", repr(time.time()))
    return {"woke_at": time.time()}


class GateOnly(Schema):
    gate = fields.String(required=True)


fanout = Workflow("fanout", input_schema=GateOnly, description="a → (left, right) → join")


@fanout.step()
def split(ctx: StepContext) -> dict[str, Any]:
    return {"n": count(ctx)}


@fanout.step(after=["split"], timeout=30)
def left(ctx: StepContext) -> dict[str, Any]:
    wait_gate(ctx, ctx.input["gate"])
    return {"n": count(ctx)}  # the side effect, after the gate


@fanout.step(after=["split"])
def right(ctx: StepContext) -> dict[str, Any]:
    return {"n": count(ctx)}


@fanout.step(after=["left", "right"])
def join(ctx: StepContext) -> dict[str, Any]:
    assert {"left", "right"} <= set(ctx.outputs)
    return {"n": count(ctx)}


class Declined(NonRetryableError):
    code = "card_declined"


def _undo(name: str) -> Any:
    def undo(ctx: StepContext) -> dict[str, Any]:
        if name == "refund":
            wait_gate(ctx, ctx.input["gate"])
        store().rpush(f"undo:{ctx.run_id}", name)
        return {"undone": name, "n": count(ctx)}

    undo.__name__ = name
    return undo


saga = Workflow(
    "saga",
    input_schema=GateOnly,
    retry=RetryPolicy(max_attempts=2, initial_delay=0.1, jitter=0),
    description="reserve, charge, then ship fails for good: refund, then release",
)


@saga.step(compensate=_undo("release"))
def reserve(ctx: StepContext) -> dict[str, Any]:
    return {"n": count(ctx)}


@saga.step(compensate=_undo("refund"))
def charge(ctx: StepContext) -> dict[str, Any]:
    return {"n": count(ctx)}


@saga.step()
def ship(ctx: StepContext) -> None:
    count(ctx)
    raise Declined("the carrier refused the parcel")


# -- limits: a workflow with a concurrency cap and a step with a rate limit -------------


class LimitsInput(Schema):
    tag = fields.String(required=True)
    hold = fields.Float(load_default=0.3)
    gate = fields.String(load_default="")


def _in_flight(ctx: StepContext) -> None:
    """Count this run as executing for the body's duration; keep the peak per tag."""
    r = store()
    tag = ctx.input["tag"]
    now = r.incr(f"capped:{tag}:now")
    r.rpush(f"capped:{tag}:peaks", now)
    try:
        if ctx.input.get("gate"):
            wait_gate(ctx, ctx.input["gate"])
        time.sleep(ctx.input["hold"])
    finally:
        r.decr(f"capped:{tag}:now")


capped = Workflow(
    "capped",
    input_schema=LimitsInput,
    max_concurrent_runs=2,
    description="Two steps; at most two runs execute steps at once.",
)


@capped.step(timeout=30)
def capped_first(ctx: StepContext) -> dict[str, Any]:
    count(ctx)
    _in_flight(ctx)
    return {"ok": True}


@capped.step(timeout=30)
def capped_second(ctx: StepContext) -> dict[str, Any]:
    count(ctx)
    _in_flight(ctx)
    return {"ok": True}


rated = Workflow(
    "rated",
    input_schema=LimitsInput,
    description="One step that may start at most 4 times a second (a provider's limit).",
)


@rated.step(rate_limit=4)
def call_provider(ctx: StepContext) -> dict[str, Any]:
    count(ctx)
    return {"called": True}


# -- a backlog: many runs of one slow step ---------------------------------------------


class BusyInput(Schema):
    hold = fields.Float(load_default=0.1)


busy = Workflow("busy", input_schema=BusyInput, description="One step that takes `hold` seconds.")


@busy.step(timeout=30)
def grind(ctx: StepContext) -> dict[str, Any]:
    time.sleep(ctx.input["hold"])
    return {"held": ctx.input["hold"]}
