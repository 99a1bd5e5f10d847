"""The live dashboard's server side over real HTTP: the event stream fed by the
run listener, its sign-in, its bound and its end, and the ``fragment=live``
regions the page swaps in."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.engine.errors import IllegalTransition
from app.runtime import build_manager
from app.settings import get_settings
from tests.dashboard.conftest import LiveServer, make_app
from tests.support.polling import wait_for


@pytest.fixture(scope="module")
def quiet_manager(database: str) -> Iterator[object]:
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


@pytest.fixture(scope="module")
def open_server(app) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


def read_events(lines: Iterator[str], until: str, limit: float = 10) -> list[tuple[str, dict]]:
    """Parse ``event:``/``data:`` pairs off a stream's lines until an event named ``until``."""
    events: list[tuple[str, dict]] = []
    name = None
    deadline = time.monotonic() + limit
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            events.append((name, json.loads(line[6:])))
            if name == until:
                return events
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no {until!r} event within {limit}s; got {events}")


def test_the_run_stream_sends_an_event_when_the_run_changes(open_server, quiet_manager):
    run_id = quiet_manager.pending()
    with httpx.stream("GET", f"{open_server.url}/events?run={run_id}", timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        lines = response.iter_lines()
        assert next(lines) == "retry: 1000"
        started = time.monotonic()
        quiet_manager.cancel(run_id)
        events = read_events(lines, "change")
    name, data = events[-1]
    assert name == "change" and data["runs"] == [run_id]  # (and maybe the listener's first RESET)
    assert time.monotonic() - started < 5


def test_the_list_stream_sees_new_runs_and_not_only_one(open_server, quiet_manager):
    with httpx.stream("GET", f"{open_server.url}/events", timeout=30) as response:
        lines = response.iter_lines()
        read_events(lines, "hello")
        first = quiet_manager.pending()
        seen: set[str] = set()
        while first not in seen:
            seen.update(read_events(lines, "change")[-1][1]["runs"])
        second = quiet_manager.pending()  # the stream goes on after its first change
        while second not in seen:
            seen.update(read_events(lines, "change")[-1][1]["runs"])
    assert {first, second} <= seen


def test_a_stream_ends_after_its_lifetime_and_frees_its_slot(database, quiet_manager):
    app = make_app(api_token=None, dashboard_stream_seconds=1.0, dashboard_max_streams=1)
    with LiveServer(app) as server:
        config = app.extensions["stepwise_dashboard"]
        started = time.monotonic()
        with httpx.stream("GET", f"{server.url}/events", timeout=30) as response:
            assert config.streams.open == 1
            lines = response.iter_lines()
            events = read_events(lines, "bye")
            assert list(lines) in ([], [""])  # the server closed the stream
        assert events[-1] == ("bye", {"reconnect": True})
        assert 1 <= time.monotonic() - started < 5
        # the server thread gives the slot back as its generator finishes
        wait_for(lambda: config.streams.open == 0, timeout=5, what="the stream's slot back")


def test_streams_past_the_bound_are_refused_so_the_page_polls(database):
    app = make_app(api_token=None, dashboard_max_streams=1)
    with LiveServer(app) as server, httpx.stream("GET", f"{server.url}/events", timeout=30) as one:
        read_events(one.iter_lines(), "hello")
        refused = httpx.get(f"{server.url}/events", timeout=5)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"


def test_stream_and_fragments_need_the_sign_in(live_server, quiet_manager):
    run_id = quiet_manager.pending()
    assert httpx.get(f"{live_server.url}/events?run={run_id}", timeout=5).status_code == 401
    fragment = httpx.get(f"{live_server.url}/runs/{run_id}?fragment=live", timeout=5)
    assert fragment.status_code == 401
    assert fragment.json()["error"]["code"] == "unauthorized"
    page = httpx.get(f"{live_server.url}/runs/{run_id}", timeout=5)
    assert page.status_code == 302 and "/sign-in" in page.headers["location"]


def test_a_stream_for_a_malformed_run_id_is_a_404(client_for_open_app):
    assert client_for_open_app.get("/events?run=nope").status_code == 404


@pytest.fixture
def client_for_open_app(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def test_the_run_fragment_is_the_live_region_alone(client_for_open_app, quiet_manager):
    run_id = quiet_manager.pending()
    html = client_for_open_app.get(f"/runs/{run_id}?fragment=live").get_data(as_text=True)
    assert html.lstrip().startswith('<div id="live" data-live="true"')
    assert f'data-stream="/events?run={run_id}"' in html
    assert "<html" not in html and "topbar" not in html
    assert 'data-step="blocked"' in html and "badge" in html
    quiet_manager.cancel(run_id)
    html = client_for_open_app.get(f"/runs/{run_id}?fragment=live").get_data(as_text=True)
    assert 'data-live="false"' in html and "cancelled" in html


def test_the_list_fragment_follows_the_newest_page(client_for_open_app, quiet_manager):
    run_id = quiet_manager.pending()
    html = client_for_open_app.get("/?fragment=live").get_data(as_text=True)
    assert html.lstrip().startswith('<div id="live" data-live="true"')
    assert f'data-run-id="{run_id}"' in html
    assert "status-tabs" in html and "<form" not in html
    searched = client_for_open_app.get(f"/?q=key-{uuid.uuid4().hex}").get_data(as_text=True)
    assert 'data-live="false"' in searched
