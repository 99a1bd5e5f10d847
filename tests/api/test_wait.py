"""``GET /api/v1/workflows/<id>?wait=N`` (DESIGN §10, awaiting a run).

Early answers come from a real worker finishing the run; the many-waiters and
bound tests run the Procfile's own web line (gunicorn, threaded workers) on a
free port and wait over real HTTP.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.engine.errors import IllegalTransition
from app.runtime import build_manager
from app.settings import get_settings
from tests.api.conftest import assert_error, signup_input, start
from tests.reliability.procfile import procfile_web
from tests.support.polling import wait_for


@pytest.fixture(scope="module")
def quiet_manager(database: str) -> Iterator[object]:
    """Starts runs without sending them: they stay pending until a test ends them."""
    manager = build_manager(get_settings(), dispatch=None)
    started: list[str] = []

    def pending() -> str:
        run_id = str(manager.start("gated", {"gate": "never"}).run["id"])
        started.append(run_id)
        return run_id

    manager.pending = pending  # type: ignore[attr-defined]
    yield manager
    for run_id in started:
        with contextlib.suppress(IllegalTransition):
            manager.cancel(run_id)


@pytest.mark.parametrize("value", ["0", "-1", "61", "abc", "NaN", "inf", ""])
def test_a_wait_outside_zero_to_sixty_seconds_is_a_422_naming_wait(client, quiet_manager, value):
    run_id = quiet_manager.pending()
    response = client.get(f"/api/v1/workflows/{run_id}?wait={value}")
    error = assert_error(response, 422, "invalid_input")
    assert "wait" in error["details"]
    assert "wait" in error["message"]


def test_wait_runs_out_and_answers_200_with_the_current_state(client, quiet_manager):
    run_id = quiet_manager.pending()
    started = time.monotonic()
    response = client.get(f"/api/v1/workflows/{run_id}?wait=0.7")
    assert response.status_code == 200
    assert response.get_json()["status"] == "pending"
    assert 0.7 <= time.monotonic() - started < 5


def test_wait_for_an_unknown_run_is_a_404_at_once(client):
    started = time.monotonic()
    assert_error(client.get(f"/api/v1/workflows/{uuid.uuid4()}?wait=30"), 404, "run_not_found")
    assert_error(client.get("/api/v1/workflows/not-a-run?wait=30"), 404, "run_not_found")
    assert time.monotonic() - started < 3


def test_wait_answers_as_soon_as_a_real_worker_finishes_the_run(client, worker):
    created = start(client, "signup", signup_input())
    assert created.status_code == 202
    run_id = created.get_json()["id"]
    started = time.monotonic()
    response = client.get(f"/api/v1/workflows/{run_id}?wait=30")
    elapsed = time.monotonic() - started
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "succeeded"
    assert [s["status"] for s in body["steps"]] == ["succeeded"] * 4 + ["skipped"]
    assert elapsed < 15, f"took {elapsed:.1f}s: the waiter was not woken by the end"


def test_a_finished_run_is_answered_at_once(client, worker):
    run_id = start(client, "signup", signup_input()).get_json()["id"]
    assert client.get(f"/api/v1/workflows/{run_id}?wait=30").get_json()["status"] == "succeeded"
    started = time.monotonic()
    assert client.get(f"/api/v1/workflows/{run_id}?wait=60").status_code == 200
    assert time.monotonic() - started < 1


def test_the_openapi_document_describes_wait(client):
    get_run = client.get("/api/openapi.json").get_json()["paths"]["/api/v1/workflows/{name_or_id}"]
    params = {p["name"]: p for p in get_run["get"]["parameters"]}
    assert params["wait"]["in"] == "query"
    assert params["wait"]["schema"]["maximum"] == 60


WEB = {"WEB_CONCURRENCY": "1", "WEB_THREADS": "64", "WEB_MAX_WAITERS": "60", "LOG_LEVEL": "warning"}


def test_fifty_waiters_on_one_threaded_web_process_are_all_woken(quiet_manager):
    runs = [quiet_manager.pending() for _ in range(50)]
    with procfile_web(WEB) as web, ThreadPoolExecutor(max_workers=50) as pool:

        def wait(run_id: str) -> tuple[int, str, float]:
            t0 = time.monotonic()
            r = httpx.get(f"{web.base}/api/v1/workflows/{run_id}?wait=40", timeout=60)
            return r.status_code, r.json()["status"], time.monotonic() - t0

        futures = [pool.submit(wait, run_id) for run_id in runs]
        time.sleep(1.5)  # let every waiter park on the listener
        assert not any(f.done() for f in futures), "a waiter answered before its run ended"
        # the web process still answers other requests while 50 wait
        assert httpx.get(f"{web.base}/healthz", timeout=5).status_code == 200
        ended = time.monotonic()
        for run_id in runs:
            quiet_manager.cancel(run_id)
        answers = [f.result(timeout=30) for f in futures]
        woken_within = time.monotonic() - ended
    assert {(code, status) for code, status, _ in answers} == {(200, "cancelled")}
    assert woken_within < 10, f"the last waiter answered {woken_within:.1f}s after the ends"


def test_past_the_waiter_bound_a_wait_gets_a_503_with_retry_after(quiet_manager):
    held = [quiet_manager.pending() for _ in range(2)]
    bound = {**WEB, "WEB_THREADS": "8", "WEB_MAX_WAITERS": "2", "DASHBOARD_MAX_STREAMS": "1"}
    with procfile_web(bound) as web, ThreadPoolExecutor(max_workers=2) as pool:
        url = f"{web.base}/api/v1/workflows/{{}}?wait=30"
        parked = [pool.submit(httpx.get, url.format(run_id), timeout=60) for run_id in held]
        extra = quiet_manager.pending()

        def refused() -> httpx.Response | None:
            # a probe that arrived before a parked request took that one's slot:
            # the parked request was refused instead; park it again
            for i, future in enumerate(parked):
                if future.done():
                    assert future.result().status_code == 503
                    parked[i] = pool.submit(httpx.get, url.format(held[i]), timeout=60)
            r = httpx.get(f"{web.base}/api/v1/workflows/{extra}?wait=1", timeout=30)
            return r if r.status_code == 503 and not any(f.done() for f in parked) else None

        response = wait_for(refused, timeout=20, what="the third waiter to be refused")
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"] == "too_many_waiters"
        assert body["error"]["details"] == {"max_waiters": 2}
        assert response.headers["Retry-After"] == "1"
        # a plain read is not a waiter: it is served as usual
        assert httpx.get(f"{web.base}/api/v1/workflows/{extra}", timeout=5).status_code == 200

        for run_id in held:
            quiet_manager.cancel(run_id)
        assert [p.result(timeout=20).json()["status"] for p in parked] == ["cancelled"] * 2
        quiet_manager.cancel(extra)
        again = httpx.get(url.format(extra), timeout=10)
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
