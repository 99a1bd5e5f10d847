"""Over real HTTP: the idempotency race, chunked bodies, and a POST while the broker is down."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import sqlalchemy as sa

from tests.api.conftest import closed_port, signup_input
from tests.api.servers import gunicorn, serve_in_thread
from tests.support.counts import runs_and_steps_for_key


def test_twenty_concurrent_identical_posts_with_one_key_start_exactly_one_run(app, engine):
    key = f"race-{uuid.uuid4().hex}"
    body = {"input": signup_input()}
    barrier = threading.Barrier(20)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    with serve_in_thread(app) as base:

        def post() -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                barrier.wait()
                response = http.post(
                    "/api/v1/workflows/signup", json=body, headers={"Idempotency-Key": key}
                )
            with lock:
                results.append((response.status_code, response.json()["id"]))

        threads = [threading.Thread(target=post) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)

    assert len(results) == 20
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 19 + [202]
    assert len({run_id for _, run_id in results}) == 1
    assert runs_and_steps_for_key(engine, key) == (1, 5)


def test_a_chunked_body_over_the_limit_is_413(make_app):
    small = make_app(max_content_length=200)

    def chunks():
        yield b'{"input": {"name": "'
        for _ in range(20):
            yield b"z" * 50
        yield b'"}}'

    with serve_in_thread(small) as base:
        response = httpx.post(
            f"{base}/api/v1/workflows/signup",
            content=chunks(),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_post_while_the_broker_is_down_records_the_run_and_answers_202(engine):
    broker = f"redis://127.0.0.1:{closed_port()}/0"
    with gunicorn({"CELERY_BROKER_URL": broker}) as base:
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["error"]["details"]["broker"].startswith("down")

        began = time.monotonic()
        response = httpx.post(
            f"{base}/api/v1/workflows/signup", json={"input": signup_input()}, timeout=30
        )
        elapsed = time.monotonic() - began
    assert response.status_code == 202, response.text
    assert elapsed < 5, f"the POST took {elapsed:.2f} s with the broker down"
    run = response.json()
    with engine.connect() as c:
        status = c.execute(
            sa.text("SELECT status FROM workflow_runs WHERE id = :id"), {"id": run["id"]}
        ).scalar()
        pending_steps = c.execute(
            sa.text(
                "SELECT count(*) FROM workflow_steps WHERE run_id = :id AND status = 'pending'"
            ),
            {"id": run["id"]},
        ).scalar()
    assert (status, pending_steps) == ("pending", 5)
    print(f"POST with the broker down answered 202 in {elapsed:.3f} s")
