"""Scenario 13: no one gets in without the token, the token never reaches a log,
Flower's API needs its credentials, and a pickled message never runs.

Real processes throughout: the Procfile's web line (gunicorn) and a celery
worker, both with ``API_TOKEN`` set (a deployment gives every process the same
environment), and the Procfile's Flower line with ``FLOWER_BASIC_AUTH``.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from kombu import Connection, Exchange, Queue

from app import create_app
from app.runtime import build_manager
from app.settings import get_settings, set_settings
from tests.e2e.conftest import wait_status
from tests.ops.conftest import free_port, procfile_command
from tests.reliability.procfile import Web, assert_error_shape, procfile_web
from tests.support.environment import BROKER_URL
from tests.support.polling import wait_for
from tests.support.processes import Process, Worker

pytestmark = pytest.mark.slow

TOKEN = f"sec-{secrets.token_hex(16)}"
WRONG = f"sec-{secrets.token_hex(16)}"
SECURE_ENV = {"API_TOKEN": TOKEN, "LOG_LEVEL": "debug"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SAMPLE_ARGS = {  # values for the URL rules' arguments
    "name_or_id": "signup",
    "run_id": "00000000-0000-4000-8000-000000000000",
    "name": "signup",
}


@pytest.fixture(scope="module")
def secure_worker(database: str) -> Iterator[Worker]:
    w = Worker(concurrency=2, env=SECURE_ENV).start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def web(database: str) -> Iterator[Web]:
    with procfile_web(SECURE_ENV) as server:
        yield server


def api_routes() -> list[tuple[str, str]]:
    """Every (method, path) under /api that the app's URL map serves."""
    original = get_settings()
    try:
        app = create_app(original.override(api_token=TOKEN))
    finally:
        set_settings(original)
    routes = []
    for rule in app.url_map.iter_rules():
        if not (rule.rule == "/api" or rule.rule.startswith("/api/")):
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = re.sub(rf"<(?:[^:<>]+:)?{arg}>", SAMPLE_ARGS.get(arg, "x"), path)
        routes += [(method, path) for method in sorted(rule.methods or ())]
    return routes


def openapi_paths(web: Web) -> set[str]:
    document = httpx.get(f"{web.base}/api/openapi.json", headers=AUTH, timeout=10).json()
    return set(document["paths"])


def test_every_api_route_and_method_answers_401_without_the_right_token(web):
    routes = api_routes()
    # the URL map covers every /api path the OpenAPI document describes, and more
    # (the document itself, its docs page, the catch-all 404)
    served = {
        re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for rule in create_app().url_map.iter_rules()
        if rule.rule.startswith("/api")
    }
    # each workflow's own start and batch operations (/api/v1/workflows/signup,
    # .../signup/batch) are served by the rules /api/v1/workflows/{name_or_id}
    # and /api/v1/workflows/{name}/batch
    def rule_of(path: str) -> str:
        if path in served:
            return path
        if re.fullmatch(r"/api/v1/workflows/[a-z][a-z0-9_]*", path):
            return "/api/v1/workflows/{name_or_id}"
        if re.fullmatch(r"/api/v1/workflows/[a-z][a-z0-9_]*/batch", path):
            return "/api/v1/workflows/{name}/batch"
        return path

    documented = {rule_of(path) for path in openapi_paths(web) if path.startswith("/api")}
    assert len(documented) >= 4 and documented <= served, documented - served
    refused: Counter[str] = Counter()
    with httpx.Client(base_url=web.base, timeout=10) as http:
        for method, path in routes:
            for label, headers in (
                ("none", {}),
                ("wrong", {"Authorization": f"Bearer {WRONG}"}),
                ("basic", {"Authorization": f"Basic {TOKEN}"}),
                ("prefix", {"Authorization": f"Bearer {TOKEN[:-1]}"}),
            ):
                response = http.request(method, path, headers=headers)
                if method == "HEAD":  # no body to carry the shape
                    assert response.status_code == 401, (method, path, label)
                else:
                    assert_error_shape(response, 401, "unauthorized")
                assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
                refused[label] += 1
            # the right token passes the gate (whatever the route then answers)
            assert http.request(method, path, headers=AUTH).status_code != 401, (method, path)
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert http.get(probe).status_code == 200, probe
    methods = Counter(method for method, _ in routes)
    assert {"GET", "POST"} <= set(methods)
    assert set(refused.values()) == {len(routes)}
    print(
        f"{len(routes)} (method, /api path) pairs, {sum(refused.values())} refused 401; "
        f"methods {dict(methods)}"
    )


def test_the_token_never_appears_in_a_log_line_of_web_or_worker(web, secure_worker, manager):
    with httpx.Client(base_url=web.base, timeout=30) as http:
        email = f"sec-{uuid.uuid4().hex[:8]}@example.com"
        ok = http.post(
            "/api/v1/workflows/signup",
            headers=AUTH,
            json={"input": {"email": email, "name": "Sec", "plan": "free"}},
        )
        assert ok.status_code == 202
        failing = http.post("/api/v1/workflows/flaky", headers=AUTH, json={"input": {"fatal": True}})
        assert failing.status_code == 202
        invalid = http.post(
            "/api/v1/workflows/signup",
            headers=AUTH,
            json={"input": {"email": "not-an-email", "plan": "gold"}},
        )
        assert_error_shape(invalid, 422, "invalid_input")
        broken = http.post(
            "/api/v1/workflows/signup",
            headers={**AUTH, "Content-Type": "application/json"},
            content=b'{"input": ',
        )
        assert_error_shape(broken, 400, "malformed_json")
        assert http.get("/api/v1/workflows", headers=AUTH).status_code == 200
        assert_error_shape(
            http.get("/api/v1/workflows", headers={"Authorization": f"Bearer {WRONG}"}), 401, "unauthorized"
        )
        assert_error_shape(http.get("/api/v1/workflows"), 401, "unauthorized")
    good_run, bad_run = ok.json()["id"], failing.json()["id"]
    assert wait_status(manager, good_run, "succeeded", "failed")["status"] == "succeeded"
    assert wait_status(manager, bad_run, "succeeded", "failed")["status"] == "failed"

    web_log, worker_log = web.output(), secure_worker.output()
    # the logs did record this traffic and these runs: the scan below is not vacuous
    assert web_log.count("/api/v1/workflows") >= 7
    assert good_run in worker_log and bad_run in worker_log
    assert "step failed; run failed" in worker_log
    lines = web_log.splitlines() + worker_log.splitlines()
    leaking = [line for line in lines if TOKEN in line or WRONG in line]
    assert leaking == []
    print(f"scanned {len(lines)} log lines of web and worker: 0 carry the token")


@pytest.fixture
def flower(database: str) -> Iterator[str]:
    port = free_port()
    process = Process(
        ["bash", "-c", f"exec {procfile_command('flower')}"],
        env={"FLOWER_PORT": str(port), "FLOWER_BASIC_AUTH": "ops:fl0wer-" + secrets.token_hex(8)},
        name="flower",
    ).start()
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.alive, process.output()
        try:
            return httpx.get(f"{base}/healthcheck", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout=60, what="Flower to listen")
        yield base
    finally:
        process.stop()


def unsent_signup_run() -> str:
    """A real pending signup run whose chain was never sent (no dispatcher)."""
    quiet = build_manager(get_settings(), dispatch=None)
    email = f"sec-{uuid.uuid4().hex[:8]}@example.com"
    return str(quiet.start("signup", {"email": email, "name": "Sec", "plan": "free"}).run["id"])


def first_step(engine: sa.Engine, run_id: str) -> tuple[str, int, int]:
    with engine.connect() as c:
        status, attempts = c.execute(
            sa.text("SELECT status, attempts FROM workflow_steps WHERE run_id = :r AND position = 0"),
            {"r": run_id},
        ).one()
        users = c.execute(sa.text("SELECT count(*) FROM users WHERE run_id = :r"), {"r": run_id}).scalar()
    return str(status), int(attempts), int(users)


def test_flower_answers_401_to_pages_and_to_its_task_api_without_credentials(flower, secure_worker, engine):
    """tests/ops/test_flower.py covers the pages; this covers the API that can
    start tasks and stop workers — unauthenticated, a remote control."""
    run_id = unsent_signup_run()
    gets = [
        "/",
        "/workers",
        "/tasks",
        "/broker",
        "/api/workers",
        "/api/tasks",
        "/api/task/types",
        "/api/queues/length",
        f"/worker/{secure_worker.node}",
    ]
    posts = [
        ("/api/task/async-apply/signup.create_user", {"args": [run_id]}),
        ("/api/task/send-task/signup.create_user", {"args": [run_id]}),
        (f"/api/worker/shutdown/{secure_worker.node}", None),
        (f"/api/worker/pool/shrink/{secure_worker.node}", None),
    ]
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=flower, timeout=10) as http:
        for path in gets:
            for auth in (None, ("ops", "wrong")):
                statuses[http.get(path, auth=auth).status_code] += 1
        for path, body in posts:
            for auth in (None, ("ops", "wrong")):
                statuses[http.post(path, json=body, auth=auth).status_code] += 1
    assert statuses == {401: 2 * (len(gets) + len(posts))}
    assert secure_worker.alive
    assert first_step(engine, run_id) == ("pending", 0, 0)
    print(f"Flower without credentials: {dict(statuses)}")


class _Tripwire:
    """Unpickling this creates a directory: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.path),))


def publish_pickled_step(run_id: str, tripwire: Path) -> str:
    """A protocol-2 task message for ``signup.create_user``, pickle-serialized."""
    task_id = str(uuid.uuid4())
    exchange = Exchange("celery", type="direct")
    queue = Queue("celery", exchange, routing_key="celery")
    body = (
        [run_id],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None, "tripwire": _Tripwire(tripwire)},
    )
    headers = {
        "lang": "py",
        "task": "signup.create_user",
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "timelimit": [None, None],
        "argsrepr": repr([run_id]),
        "kwargsrepr": "{}",
        "origin": "reliability-test",
    }
    with Connection(BROKER_URL) as conn:
        conn.Producer().publish(
            body,
            exchange=exchange,
            routing_key="celery",
            serializer="pickle",
            headers=headers,
            declare=[queue],
            retry=True,
        )
    return task_id


def test_a_pickled_step_message_is_refused_and_nothing_runs(secure_worker, engine, manager, tmp_path):
    run_id = unsent_signup_run()
    tripwire = tmp_path / "unpickled"
    before = secure_worker.output()
    children = sorted(secure_worker.child_pids())
    task_id = publish_pickled_step(run_id, tripwire)

    def refusal() -> str | None:
        new = secure_worker.output()[len(before) :]
        for line in new.splitlines():
            if "pickle" in line and ("untrusted" in line.lower() or "ContentDisallowed" in line):
                return line
        return None

    line = wait_for(refusal, timeout=30, what="the worker to refuse the pickled message")
    assert first_step(engine, run_id) == ("pending", 0, 0)
    assert not tripwire.exists()
    assert secure_worker.alive and sorted(secure_worker.child_pids()) == children
    assert f"Task signup.create_user[{task_id}] received" not in secure_worker.output()

    # the same run, sent the normal way (JSON), runs once and completes
    assert manager.send(uuid.UUID(run_id), "signup", ["create_user"])
    run = wait_status(manager, run_id, "succeeded", "failed")
    assert run["status"] == "succeeded"
    assert [s["attempts"] for s in run["steps"]] == [1, 1, 1, 1, 1]
    assert first_step(engine, run_id) == ("succeeded", 1, 1)
    assert not tripwire.exists()
    print(f"refused: {line.strip()[:200]}")
