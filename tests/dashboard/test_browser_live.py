"""Live pages in headless Chromium: a run page and the runs list follow a real
worker over the event stream without reloading, and fall back to polling when
the browser has no EventSource."""

from __future__ import annotations

import uuid

import pytest
from selenium.webdriver.common.by import By

from tests.dashboard.test_browser import has, page, read, run_status, wait_steps  # noqa: F401
from tests.support.polling import wait_for
from tests.support.workflows import store

pytestmark = pytest.mark.usefixtures("worker")


def live_state(driver) -> dict:  # type: ignore[type-arg]
    return read(driver, lambda: driver.execute_script("return window.stepwiseLive || null")) or {}


def test_run_page_follows_a_worker_over_the_event_stream_without_reloading(
    page, live_server, manager  # noqa: F811
):
    gate = uuid.uuid4().hex[:10]
    run = manager.start("watched", {"gate": gate}).run
    page.get(f"{live_server.url}/runs/{run['id']}")
    page.execute_script("window.__sameDocument = true;")
    wait_for(lambda: live_state(page).get("mode") == "stream", timeout=10, what="the stream")
    wait_steps(page, {"first": "succeeded", "blocked": "running", "last": "pending"})
    events_before = live_state(page)["events"]

    store().set(f"gate:{gate}", 1)
    wait_steps(page, {"first": "succeeded", "blocked": "succeeded", "last": "succeeded"})
    wait_for(lambda: run_status(page) == "succeeded", what="the run to succeed")
    state = live_state(page)
    assert page.execute_script("return window.__sameDocument === true;"), "the page reloaded"
    assert state["events"] > events_before, state  # woken by the stream, not by a timer
    # a finished run is no longer followed: the page gives its stream back
    wait_for(lambda: live_state(page).get("mode") == "idle", timeout=10, what="the stream to close")
    assert page.find_element(By.ID, "live").get_attribute("data-live") == "false"


def test_runs_list_shows_a_new_run_and_its_end_without_reloading(
    page, live_server, manager  # noqa: F811
):
    page.get(f"{live_server.url}/")
    page.execute_script("window.__sameDocument = true;")
    wait_for(lambda: live_state(page).get("mode") == "stream", timeout=10, what="the stream")
    gate = uuid.uuid4().hex[:10]
    run = manager.start("watched", {"gate": gate}).run
    row = f'tr[data-run-id="{run["id"]}"]'
    wait_for(lambda: read(page, lambda: has(page, row)), timeout=15, what="the new run's row")
    store().set(f"gate:{gate}", 1)

    def row_status() -> str | None:
        return read(page, lambda: page.find_element(By.CSS_SELECTOR, f"{row} .badge").text)

    wait_for(lambda: row_status() == "succeeded", timeout=30, what="the row to show the end")
    assert page.execute_script("return window.__sameDocument === true;"), "the page reloaded"
    assert live_state(page)["mode"] == "stream"


def test_without_event_source_the_run_page_polls_and_still_follows(
    page, live_server, manager  # noqa: F811
):
    script = page.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": "delete window.EventSource;"}
    )
    try:
        gate = uuid.uuid4().hex[:10]
        run = manager.start("watched", {"gate": gate}).run
        page.get(f"{live_server.url}/runs/{run['id']}")
        page.execute_script("window.__sameDocument = true;")
        assert page.execute_script("return typeof window.EventSource") == "undefined"
        wait_for(lambda: live_state(page).get("mode") == "poll", timeout=10, what="polling")
        wait_steps(page, {"first": "succeeded", "blocked": "running", "last": "pending"})
        store().set(f"gate:{gate}", 1)
        wait_for(lambda: run_status(page) == "succeeded", timeout=30, what="the run to succeed")
        assert page.execute_script("return window.__sameDocument === true;"), "the page reloaded"
        assert live_state(page)["events"] == 0 and live_state(page)["refreshes"] >= 1
    finally:
        page.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]}
        )
