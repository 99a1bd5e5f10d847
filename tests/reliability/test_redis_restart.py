"""Scenario 5: Redis restarts with no persistence while runs are queued and running.

The machine's shared Redis is never touched: the worker, beat and the web
process use a private ``redis-server`` on a free loopback port, which the test
SIGKILLs and starts again empty — every queued message is gone. Postgres
still has every run; the recovery sweep re-sends them. Meanwhile the API keeps
recording runs (202) or says 503 in the error shape — never 500, never a hang.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_lib
import sqlalchemy as sa

from tests.api.conftest import closed_port
from tests.api.servers import gunicorn
from tests.e2e.conftest import gate_id
from tests.reliability.conftest import (
    accepted_sendgrid_per_key,
    stripe_per_key,
    tally,
    webhook_per_run,
)
from tests.support.polling import wait_for
from tests.support.processes import VENV_BIN, Process, Worker
from tests.support.workflows import executions, store

pytestmark = [pytest.mark.slow, pytest.mark.redis_broker]

CONCURRENCY = 4
GATED = 6  # 4 of them block mid-step (one per pool slot); 2 wait in the queue
QUEUED_SIGNUPS = 24
OUTAGE_SECONDS = 3.0
REQUEST_TIMEOUT = 10.0


class PrivateRedis:
    """A ``redis-server`` of our own, no persistence: a restart starts it empty."""

    def __init__(self, directory: Path) -> None:
        self.port = closed_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Process | None = None

    def start(self) -> PrivateRedis:
        self.process = Process(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            name="redis",
        ).start()
        wait_for(self.answers, timeout=15, what="the private redis-server to answer")
        return self

    def answers(self) -> bool:
        client = redis_lib.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis_lib.ConnectionError:
            return False
        finally:
            client.close()

    def _queues(self, client: redis_lib.Redis) -> list[bytes]:
        """Celery's default queue and every Stepwise queue (one per step, and control)."""
        return [b"celery", *sorted(client.scan_iter(match="stepwise.*", _type="list"))]

    def queued(self) -> int:
        client = redis_lib.Redis.from_url(self.url)
        try:
            return sum(int(client.llen(q)) for q in self._queues(client))
        finally:
            client.close()

    def queued_tasks(self) -> list[tuple[str, str]]:
        """(task name, run id) of each message waiting in the queues."""
        client = redis_lib.Redis.from_url(self.url)
        try:
            found = []
            for q in self._queues(client):
                for raw in client.lrange(q, 0, -1):
                    message = json.loads(raw)
                    args = json.loads(base64.b64decode(message["body"]))[0]
                    found.append((message["headers"]["task"], str(args[0]) if args else ""))
            return found
        finally:
            client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


def start_signup(base: str, email: str, plan: str) -> httpx.Response:
    return httpx.post(
        f"{base}/api/v1/workflows/signup",
        json={"input": {"email": email, "name": "Outage", "plan": plan}},
        timeout=REQUEST_TIMEOUT,
    )


def assert_error_shape(response: httpx.Response) -> None:
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str) and error["message"]


def test_redis_restart_loses_the_queue_and_the_sweep_resends_every_run_from_postgres(
    manager, engine, tmp_path, private_redis, sendgrid, stripe_api, webhook, provider_env
):
    env = {**provider_env, "CELERY_BROKER_URL": private_redis.url,
           # the gated steps wait for the test, not for their time limit
           "WORKFLOW_STEP_TIMEOUT": "30"}
    gate = gate_id()
    gated: list[Any] = []
    signups: dict[Any, str] = {}  # run id → email
    outage_statuses: Counter[int] = Counter()
    readiness: Counter[int] = Counter()
    slowest = 0.0

    worker = Worker(concurrency=CONCURRENCY, env=env).start()
    sweeper = Process(
        [str(VENV_BIN / "celery"), "-A", "workers", "beat", "--loglevel", "INFO",
         "-s", str(tmp_path / "beat-schedule")],
        env=env, name="beat",
    ).start()
    try:
        with gunicorn(env) as base:
            for _ in range(GATED):
                response = httpx.post(f"{base}/api/v1/workflows/gated",
                                      json={"input": {"gate": gate}}, timeout=REQUEST_TIMEOUT)
                assert response.status_code == 202, response.text
                gated.append(response.json()["id"])
            wait_for(lambda: store().scard(f"arrived:{gate}") == CONCURRENCY, timeout=30,
                     what="every pool slot to hold a gated run mid-step")
            for i in range(QUEUED_SIGNUPS):
                email = f"redis-q-{i}-{uuid.uuid4().hex[:6]}@example.com"
                response = start_signup(base, email, "pro" if i % 2 else "free")
                assert response.status_code == 202, response.text
                signups[response.json()["id"]] = email
            queued = private_redis.queued()
            assert queued >= QUEUED_SIGNUPS + GATED - CONCURRENCY  # waiting behind busy slots
            before_kill = {str(rid) for rid in [*gated, *signups]}

            private_redis.kill()  # no persistence: the queue is gone with it
            down_since = time.monotonic()
            i = 0
            while time.monotonic() - down_since < OUTAGE_SECONDS or i < 6:
                email = f"redis-out-{i}-{uuid.uuid4().hex[:6]}@example.com"
                began = time.monotonic()
                response = start_signup(base, email, "free")  # a hang fails on its timeout
                slowest = max(slowest, time.monotonic() - began)
                outage_statuses[response.status_code] += 1
                assert response.status_code in (202, 503), response.text
                if response.status_code == 202:
                    signups[response.json()["id"]] = email
                else:
                    assert_error_shape(response)
                ready = httpx.get(f"{base}/readyz", timeout=REQUEST_TIMEOUT)
                readiness[ready.status_code] += 1
                assert ready.status_code == 503 and "broker" in ready.json()["error"]["message"]
                assert_error_shape(ready)
                i += 1

            private_redis.start()  # same port, empty
            # every message queued before the kill is gone with it. What may be there:
            # beat's sweep, and the chains of runs started during the outage, which
            # the web processes' senders (app.engine.outbox) publish once it is back
            during = {str(rid) for rid in signups} - before_kill
            steps = [(t, rid) for t, rid in private_redis.queued_tasks()
                     if not t.startswith("stepwise.")]
            assert not [m for m in steps if m[1] in before_kill]
            assert all(rid in during for _, rid in steps)
            store().set(f"gate:{gate}", 1)
            started = gated + list(signups)
            wait_for(lambda: tally(manager, started) == {"succeeded": len(started)},
                     timeout=75, interval=0.5, what="every run started to succeed")
            assert httpx.get(f"{base}/readyz", timeout=REQUEST_TIMEOUT).status_code == 200
            assert worker.alive and sweeper.alive  # both rode out the outage
    finally:
        sweeper.stop()
        worker.stop()

    final = tally(manager, started)
    figures = {
        "started": len(started),
        "started_during_outage": outage_statuses[202],
        "queued_at_kill": queued,
        "succeeded": final["succeeded"],
        "failed": final["failed"],
        "lost": len(started) - final["succeeded"] - final["failed"],
        "outage_statuses": dict(outage_statuses),
        "slowest_outage_request_s": round(slowest, 2),
    }
    print(f"\nredis restart figures: {figures}")
    assert figures["failed"] == 0 and figures["lost"] == 0
    assert outage_statuses[500] == 0 and sum(outage_statuses.values()) >= 6
    assert "recovery sweep: resent=" in worker.output()  # Postgres, not Redis, brought them back

    # each step's effect once
    with engine.connect() as c:
        users = dict(c.execute(
            sa.text("SELECT email, count(*) FROM users WHERE run_id::text = ANY(:ids) GROUP BY email"),
            {"ids": [str(r) for r in started]},
        ).all())
        deliveries = Counter(str(rid) for (rid,) in c.execute(
            sa.text("SELECT run_id FROM deliveries WHERE run_id::text = ANY(:ids)"),
            {"ids": [str(r) for r in signups]},
        ).all())
    assert len(users) == len(started) and set(users.values()) == {1}
    assert set(signups.values()) | {f"{r}@gated.test" for r in gated} == set(users)
    assert len(deliveries) == len(signups) and set(deliveries.values()) == {2}  # email + chat
    accepted = accepted_sendgrid_per_key(sendgrid, signups)
    assert len(accepted) == len(signups) and set(accepted.values()) == {1}
    assert set(webhook_per_run(webhook, signups, signups).values()) == {1}
    pro = [rid for rid in signups if manager.get(rid)["input"]["plan"] == "pro"]
    assert len(pro) == QUEUED_SIGNUPS // 2
    assert len(stripe_per_key(stripe_api, pro)) == len(pro)
    assert set(stripe_per_key(stripe_api, pro).values()) == {1}
    for rid in gated:
        assert executions(rid, "first") == 1
        assert executions(rid, "blocked") == 1  # never interrupted: the worker kept running
        assert executions(rid, "last") == 1
