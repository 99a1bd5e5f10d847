"""Workflows the engine tests drive. Loaded by the test session and its workers
through ``WORKFLOW_MODULES``; they count their own executions in Redis so tests
can assert that nothing ran twice.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import redis
import sqlalchemy as sa
from marshmallow import Schema, fields
from sqlalchemy.orm import Session

from app.engine import NonRetryableError, RetryableError, RetryPolicy, StepContext, Workflow


def store() -> redis.Redis:
    return redis.Redis.from_url(os.environ["TEST_REDIS_URL"], decode_responses=True)


def count(ctx: StepContext) -> int:
    """Record one execution of this step body for this run."""
    return int(store().incr(f"exec:{ctx.run_id}:{ctx.step}"))


def executions(run_id: Any, step: str) -> int:
    return int(store().get(f"exec:{run_id}:{step}") or 0)


def wait_gate(ctx: StepContext, gate: str, limit: float = 60.0) -> None:
    """Block until the test opens ``gate`` (a Redis key), marking ourselves as arrived."""
    r = store()
    r.hset("pids", str(ctx.run_id), os.getpid())
    r.sadd(f"arrived:{gate}", str(ctx.run_id))
    deadline = time.monotonic() + limit
    while not r.exists(f"gate:{gate}"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} never opened")
        time.sleep(0.02)


class GateInput(Schema):
    gate = fields.String(required=True)
    tag = fields.String(load_default="")


def _gated_workflow(name: str, blocked_timeout: float | None = None) -> Workflow:
    """first → blocked (waits on a gate) → last."""
    wf = Workflow(name, input_schema=GateInput)

    @wf.step()
    def first(ctx: StepContext) -> dict[str, Any]:
        return {"n": count(ctx)}

    @wf.step(transactional=True, timeout=blocked_timeout)
    def blocked(ctx: StepContext, session: Session) -> dict[str, Any]:
        count(ctx)
        wait_gate(ctx, ctx.input["gate"])
        session.execute(
            sa.text("INSERT INTO users (id, email, name, plan, run_id) "
                    "VALUES (gen_random_uuid(), :email, 'gated', 'free', :run)"),
            {"email": f"{ctx.run_id}@gated.test", "run": str(ctx.run_id)},
        )
        return {"passed": True}

    @wf.step()
    def last(ctx: StepContext) -> dict[str, Any]:
        return {"n": count(ctx), "seen": sorted(ctx.outputs)}

    return wf


# blocked has the suite's short step timeout, so a killed worker's lease runs out fast
gated = _gated_workflow("gated")
# the same, for a slow watcher (a browser, the inspect CLI) that must see blocked
# still running: a loaded machine takes longer than the short timeout to look
watched = _gated_workflow("watched", blocked_timeout=60)


# wait (on a gate, outside any transaction) → after: work that finishes while
# the database is away must be recorded, not run again
held = Workflow("held", input_schema=GateInput)


@held.step()
def wait(ctx: StepContext) -> dict[str, Any]:
    count(ctx)
    wait_gate(ctx, ctx.input["gate"])
    return {"waited": True}


@held.step()
def after(ctx: StepContext) -> dict[str, Any]:
    return {"n": count(ctx)}


class FlakyInput(Schema):
    fail_times = fields.Integer(load_default=0)
    fatal = fields.Boolean(load_default=False)


flaky = Workflow(
    "flaky",
    input_schema=FlakyInput,
    retry=RetryPolicy(max_attempts=4, initial_delay=0.3, multiplier=2.0, jitter=0.0),
)


@flaky.step()
def prepare(ctx: StepContext) -> dict[str, Any]:
    return {"n": count(ctx)}


@flaky.step()
def call_api(ctx: StepContext) -> dict[str, Any]:
    n = count(ctx)
    store().rpush(f"times:{ctx.run_id}", repr(time.time()))
    if ctx.input["fatal"]:
        raise NonRetryableError("the API said 400: bad request")
    if n <= ctx.input["fail_times"]:
        raise RetryableError(f"the API said 503 (attempt {ctx.attempt})")
    return {"attempt": ctx.attempt}


@flaky.step()
def finish(ctx: StepContext) -> dict[str, Any]:
    return {"n": count(ctx)}


class EmptyInput(Schema):
    pass


poison = Workflow("poison", input_schema=EmptyInput)


@poison.step()
def crash(ctx: StepContext) -> None:
    count(ctx)
    os.kill(os.getpid(), signal.SIGKILL)


class UnfixableInput(Schema):
    gate = fields.String(required=True)


# fails until a gate opens: for "retry resumes at the failed step"
fixable = Workflow(
    "fixable", input_schema=UnfixableInput, retry=RetryPolicy(max_attempts=1, jitter=0.0)
)


@fixable.step()
def setup(ctx: StepContext) -> dict[str, Any]:
    return {"n": count(ctx)}


@fixable.step()
def needs_fix(ctx: StepContext) -> dict[str, Any]:
    count(ctx)
    if not store().exists(f"gate:{ctx.input['gate']}"):
        raise NonRetryableError("not fixed yet")
    return {"fixed": True}


@fixable.step()
def wrap_up(ctx: StepContext) -> dict[str, Any]:
    return {"n": count(ctx)}


class NotJson:
    pass


bad_output = Workflow("bad_output", input_schema=EmptyInput)


@bad_output.step()
def returns_object(ctx: StepContext) -> Any:
    return {"value": NotJson()}


# the first attempt asks for a retry later than a broker countdown may safely wait
long_retry = Workflow("long_retry", input_schema=EmptyInput)


@long_retry.step()
def wait_long(ctx: StepContext) -> dict[str, Any]:
    count(ctx)
    store().rpush(f"times:{ctx.run_id}", repr(time.time()))
    if ctx.attempt == 1:
        raise RetryableError("rate limited", retry_after=25)
    return {"attempt": ctx.attempt}


# charge a (fake) provider, then — when the test asks — die before the checkpoint
class LedgerInput(Schema):
    provider_url = fields.String(required=True)
    crash_after_effect = fields.Boolean(load_default=False)


ledger = Workflow("ledger", input_schema=LedgerInput)


@ledger.step()
def charge_card(ctx: StepContext) -> dict[str, Any]:
    import httpx

    count(ctx)
    response = httpx.post(
        f"{ctx.input['provider_url']}/v1/customers",
        data={"email": f"{ctx.run_id}@ledger.test"},
        headers={"Authorization": "Bearer sk_test_fake0123456789abcdef",
                 "Idempotency-Key": ctx.idempotency_key},
        timeout=5,
    )
    response.raise_for_status()
    if ctx.input["crash_after_effect"] and ctx.attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # the provider accepted; no checkpoint yet
    return {"customer": response.json()["id"]}


@ledger.step()
def book(ctx: StepContext) -> dict[str, Any]:
    count(ctx)
    return {"booked": ctx.outputs["charge_card"]["customer"]}
