"""Scenario 14: a provider that accepts the connection and never answers.

INTEGRATION_TIMEOUT (60 s) is far longer than WORKFLOW_STEP_TIMEOUT (3 s), so
the client's own timeout never fires: the step's soft time limit has to. It
raises ``SoftTimeLimitExceeded`` inside the blocked socket read; the step
protocol records ``StepTimedOut`` and retries, and the pool child survives (no
hard-limit kill), so the single worker slot goes on to run other work.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import wait_status
from tests.reliability.conftest import tally
from tests.support.fakes.http import FakeHTTPServer, Reply
from tests.support.fakes.providers import SENDGRID_KEY, STRIPE_KEY, FakeSendGrid, FakeStripe
from tests.support.polling import wait_for
from tests.support.processes import Worker

pytestmark = pytest.mark.slow

STEP_TIMEOUT = 3.0
ATTEMPTS = 3
HARD_LIMIT = STEP_TIMEOUT + 1.0  # workers.config.hard_limit(3.0)


@dataclass(frozen=True)
class Hang:
    """Which provider hangs, the fake standing in for it, and the step that calls it."""

    provider: str
    fake: FakeHTTPServer
    env: dict[str, str]
    step: str
    position: int
    plan: str


@pytest.fixture(params=["sendgrid", "stripe"])
def hang(request) -> Iterator[Hang]:  # type: ignore[no-untyped-def]
    if request.param == "sendgrid":
        fake: FakeHTTPServer = FakeSendGrid().start()
        env = {"SENDGRID_API_KEY": SENDGRID_KEY, "SENDGRID_API_HOST": fake.url}
        yield Hang("sendgrid", fake, env, "send_welcome_email", 2, "free")
    else:
        fake = FakeStripe().start()
        env = {"STRIPE_API_KEY": STRIPE_KEY, "STRIPE_API_BASE": fake.url}
        yield Hang("stripe", fake, env, "provision_plan", 1, "pro")
    fake.stop()  # releases the held connections


def failure_times(worker_log: str, run_id: str) -> list[float]:
    """When the worker recorded each failed attempt of the run (its JSON log lines)."""
    times = []
    for raw in worker_log.splitlines():
        if not raw.startswith("{"):
            continue
        line = json.loads(raw)
        if line.get("run_id") == run_id and line.get("event", "").startswith("step failed"):
            times.append(datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp())
    return times


def test_a_hanging_provider_times_out_each_attempt_frees_the_slot_and_caps_retries(manager, engine, hang):
    name = f"hang{uuid.uuid4().hex[:10]}"  # in SendGrid's JSON and in Stripe's form body
    email = f"{name}@example.com"
    # every request for this signup is accepted and never answered
    hang.fake.plan(name, *[Reply(200, hang=True)] * (ATTEMPTS + 3))
    worker = Worker(
        concurrency=1,
        env={
            **hang.env,
            "INTEGRATION_TIMEOUT": "60",
            "WORKFLOW_STEP_TIMEOUT": str(STEP_TIMEOUT),
            "WORKFLOW_RETRY_ATTEMPTS": str(ATTEMPTS),
            "WORKFLOW_RETRY_DELAY": "0.2",
        },
    ).start()
    try:
        children = worker.child_pids()
        hung = str(manager.start("signup", {"email": email, "name": name, "plan": hang.plan}).run["id"])
        wait_for(
            lambda: hang.fake.requests(name), timeout=30, what=f"{hang.provider} to receive the first request"
        )
        healthy = str(manager.start("flaky", {}).run["id"])  # queued behind the hung step

        healthy_run = wait_status(manager, healthy, "succeeded", "failed", timeout=60)
        hung_run = wait_status(manager, hung, "succeeded", "failed", timeout=60)
        log = worker.output()
        assert worker.alive and worker.child_pids() == children  # no child was killed
    finally:
        worker.stop()

    # counted outcomes
    assert tally(manager, [hung, healthy]) == {"failed": 1, "succeeded": 1}
    assert healthy_run["finished_at"] < hung_run["finished_at"]  # ran between the attempts
    assert [s["attempts"] for s in healthy_run["steps"]] == [1, 1, 1]
    step = hung_run["steps"][hang.position]
    assert step["name"] == hang.step
    assert (step["status"], step["attempts"]) == ("failed", ATTEMPTS)
    assert hung_run["error"]["type"] == "StepTimedOut"
    assert (hung_run["error"]["step"], hung_run["error"]["attempt"]) == (hang.step, ATTEMPTS)
    assert hung_run["error"]["retryable"] is False  # the last attempt: no more
    assert {s["status"] for s in hung_run["steps"][hang.position + 1 :]} == {"pending"}  # chain stopped
    seen = hang.fake.requests(name)
    assert len(seen) == ATTEMPTS
    with engine.connect() as c:
        deliveries = c.execute(
            sa.text("SELECT count(*) FROM deliveries WHERE run_id = :r"), {"r": hung}
        ).scalar()
    assert deliveries == 0  # never accepted, never recorded
    assert "Hard time limit" not in log and "WorkerLostError" not in log

    # each attempt ended by the soft limit: after the request, before the hard limit
    failed_at = failure_times(log, hung)
    assert len(failed_at) == ATTEMPTS
    waits = [end - request.at for request, end in zip(seen, failed_at, strict=True)]
    assert all(0 < w < HARD_LIMIT for w in waits), waits
    assert all(w > STEP_TIMEOUT - 1.0 for w in waits), waits  # it did wait for the provider
    print(
        f"{hang.provider}: request → attempt recorded failed: "
        + ", ".join(f"{w:.2f} s" for w in waits)
        + f" (soft limit {STEP_TIMEOUT:g} s, hard {HARD_LIMIT:g} s)"
    )


def test_the_soft_limit_is_recognised_when_a_client_library_wraps_it():
    """stripe's transport re-raises everything as APIConnectionError, and the
    integration re-raises that ``from None``: the limit is still in the chain."""
    from celery.exceptions import SoftTimeLimitExceeded

    from app.integrations.errors import IntegrationUnavailable
    from app.engine.protocol import soft_limit_behind

    def wrapped() -> None:
        try:
            try:
                raise SoftTimeLimitExceeded()
            except Exception as exc:
                raise ConnectionError(f"client: {exc!r}")  # noqa: B904 (as the library does)
        except ConnectionError as exc:
            raise IntegrationUnavailable(f"stripe unreachable: {exc}") from None

    with pytest.raises(IntegrationUnavailable) as caught:
        wrapped()
    assert soft_limit_behind(caught.value)
    assert soft_limit_behind(SoftTimeLimitExceeded())
    assert not soft_limit_behind(IntegrationUnavailable("stripe unreachable: timed out"))
