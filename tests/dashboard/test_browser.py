"""The dashboard in headless Chromium against a real server and a real worker.

The app runs behind ``API_TOKEN`` (so every test also goes through sign-in),
served by werkzeug on a free loopback port; runs are executed by a real
Celery worker. Tests watch the page change by itself (its live refresh), as
an operator would, and take the README's screenshots on the way.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.dashboard.conftest import TOKEN
from tests.support.polling import wait_for
from tests.support.workflows import executions, store

pytestmark = pytest.mark.usefixtures("worker")


def shoot(driver, folder: Path, name: str) -> Path:
    """A full-page screenshot at a desktop width (the viewport is stretched to
    the page's height through the DevTools protocol, then put back)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": 1280,
            "height": max(640, min(int(height), 2400)),
            "deviceScaleFactor": 1,
            "mobile": False,
        },
    )
    path = folder / f"{name}.png"
    try:
        assert driver.save_screenshot(str(path)), f"could not save {path}"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


def sign_in(driver, base: str) -> None:
    driver.get(f"{base}/sign-in")
    if "/sign-in" not in driver.current_url:
        return  # already signed in
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(lambda: at(driver, lambda u: "/sign-in" not in u), what="sign-in to finish")


@pytest.fixture
def page(browser, live_server):
    sign_in(browser, live_server.url)
    return browser


def read(driver, fn):
    """Run ``fn`` against a page that may be swapping its content."""
    try:
        return fn()
    except (StaleElementReferenceException, NoSuchElementException):
        return None


def step_statuses(driver) -> dict[str, str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.step[data-step]")
    return {
        r.get_attribute("data-step"): r.find_element(By.CSS_SELECTOR, ".badge").text for r in rows
    }


def wait_steps(driver, expected: dict[str, str], timeout: float = 30) -> None:
    seen: dict[str, object] = {}

    def shows_expected() -> bool:
        seen["steps"] = read(driver, lambda: step_statuses(driver))
        return seen["steps"] == expected

    try:
        wait_for(shows_expected, timeout=timeout, what=f"the page to show steps {expected}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the page showed {seen.get('steps')}") from None


def run_status(driver) -> str | None:
    return read(driver, lambda: driver.find_element(By.CSS_SELECTOR, "#run-status .badge").text)


def at(driver, url_test) -> bool:
    """The browser navigated where ``url_test`` says and the page finished loading
    (a click returns before the next page has loaded)."""
    state = read(driver, lambda: driver.execute_script("return document.readyState"))
    return bool(url_test(driver.current_url)) and state == "complete"


def settled(driver) -> None:
    """A live page swaps its region once right after loading (catching up on what
    changed before its stream opened): wait for that before touching elements."""

    def done() -> bool:
        state = read(driver, lambda: driver.execute_script("return window.stepwiseLive")) or {}
        return state.get("mode") not in ("stream", "poll") or state.get("refreshes", 0) >= 1

    wait_for(done, timeout=10, what="the live page's first refresh")


def has(driver, css: str) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, css))


def test_visitor_without_a_session_is_sent_to_sign_in_and_back(
    browser, live_server, screenshot_dir
):
    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/workflow-types")
    assert "/sign-in?next=" in browser.current_url
    assert browser.find_element(By.TAG_NAME, "h1").text == "Sign in"
    shoot(browser, screenshot_dir, "sign-in")

    browser.find_element(By.ID, "token").send_keys("wrong-token")
    browser.find_element(By.ID, "sign-in").click()
    # the click returns before the answer page has loaded: wait for it
    error = wait_for(lambda: browser.find_elements(By.ID, "signin-error"), what="the sign-in error")
    assert "not valid" in error[0].text

    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(
        lambda: at(browser, lambda u: u.endswith("/workflow-types")),
        what="back to the page asked for",
    )
    assert browser.find_element(By.TAG_NAME, "h1").text == "Workflow types"


def test_run_started_from_the_page_shows_its_steps_succeeding(page, live_server, screenshot_dir):
    page.get(f"{live_server.url}/workflow-types")
    assert len(page.find_elements(By.CSS_SELECTOR, "section.workflow")) >= 2
    page.find_element(By.LINK_TEXT, "signup").click()
    wait_for(lambda: at(page, lambda u: u.endswith("/workflow-types?workflow=signup")), what="one type")
    names = [n.text for n in page.find_elements(By.CSS_SELECTOR, "#workflow-signup .node-name")]
    assert names == ["create_user", "provision_plan", "send_welcome_email", "notify_team", "send_welcome_sms"]
    # start → five steps → done
    assert len(page.find_elements(By.CSS_SELECTOR, "#workflow-signup .arrow")) == 6
    shoot(page, screenshot_dir, "workflow-types")
    email = f"grace-{uuid.uuid4().hex[:6]}@example.com"
    page.find_element(By.ID, "signup-email").send_keys(email)
    page.find_element(By.ID, "signup-name").send_keys("Grace Hopper")
    Select(page.find_element(By.ID, "signup-plan")).select_by_value("pro")
    page.find_element(By.ID, "start-signup").click()

    wait_for(lambda: at(page, lambda u: "/runs/" in u), what="the new run's page")
    assert "Started a signup run." in page.find_element(By.CSS_SELECTOR, ".flash-ok").text
    wait_steps(
        page,
        {
            "create_user": "succeeded",
            "provision_plan": "succeeded",
            "send_welcome_email": "succeeded",
            "notify_team": "succeeded",
            "send_welcome_sms": "skipped",  # no phone
        },
    )
    wait_for(lambda: run_status(page) == "succeeded", what="the run to succeed")
    assert email in page.find_element(By.ID, "run-input").text
    assert email in page.find_element(By.ID, "run-output").text
    assert len(page.find_elements(By.CSS_SELECTOR, ".tl-bar.tl-succeeded")) == 4
    assert not has(page, "#retry") and not has(page, "#cancel")


def test_run_page_follows_a_running_run_without_reloading(
    page, live_server, manager, screenshot_dir
):
    gate = uuid.uuid4().hex[:10]
    run = manager.start("watched", {"gate": gate}).run
    page.get(f"{live_server.url}/runs/{run['id']}")
    page.execute_script("window.__sameDocument = true;")
    wait_steps(page, {"first": "succeeded", "blocked": "running", "last": "pending"})
    assert has(page, ".tl-bar.tl-running.tl-ongoing")
    assert has(page, "#cancel") and not has(page, "#retry")

    store().set(f"gate:{gate}", 1)
    wait_steps(page, {"first": "succeeded", "blocked": "succeeded", "last": "succeeded"})
    wait_for(lambda: run_status(page) == "succeeded", what="the run to succeed")
    assert page.execute_script("return window.__sameDocument === true;"), "the page reloaded"
    wait_for(
        lambda: read(
            page, lambda: page.find_element(By.ID, "live").get_attribute("data-live") == "false"
        ),
        what="refresh to stop",
    )
    shoot(page, screenshot_dir, "run-detail")


def test_failed_run_is_retried_from_the_page_and_succeeds(page, live_server, screenshot_dir):
    gate = uuid.uuid4().hex[:10]
    page.get(f"{live_server.url}/workflow-types")
    page.find_element(By.ID, "fixable-gate").send_keys(gate)
    page.find_element(By.ID, "start-fixable").click()
    wait_for(lambda: at(page, lambda u: "/runs/" in u), what="the new run's page")
    run_id = page.current_url.rsplit("/", 1)[1]

    wait_steps(page, {"setup": "succeeded", "needs_fix": "failed", "wrap_up": "pending"})
    wait_for(lambda: run_status(page) == "failed", what="the run to fail")
    failed_row = page.find_element(By.CSS_SELECTOR, 'tr.step-failed[data-step="needs_fix"]')
    assert failed_row.is_displayed()
    assert "not fixed yet" in page.find_element(By.CSS_SELECTOR, ".step-error-row .step-error").text
    assert "not fixed yet" in page.find_element(By.ID, "run-error").text
    assert has(page, ".tl-bar.tl-failed")
    assert has(page, "#retry") and not has(page, "#cancel")
    shoot(page, screenshot_dir, "run-failed")

    store().set(f"gate:{gate}", 1)  # the operator fixes the cause...
    page.find_element(By.ID, "retry").click()  # ...and retries
    wait_for(
        lambda: read(
            page, lambda: "Retry requested" in page.find_element(By.CSS_SELECTOR, ".flash-ok").text
        ),
        what="the retry to be acknowledged",
    )
    wait_steps(page, {"setup": "succeeded", "needs_fix": "succeeded", "wrap_up": "succeeded"})
    wait_for(lambda: run_status(page) == "succeeded", what="the retried run to succeed")
    assert not has(page, "#retry")
    assert not has(page, ".step-failed")
    assert executions(run_id, "setup") == 1  # resumed at the failed step, not from scratch
    assert executions(run_id, "needs_fix") == 2


def test_cancel_from_the_page_stops_the_run_before_its_next_step(page, live_server, manager):
    gate = uuid.uuid4().hex[:10]
    run = manager.start("watched", {"gate": gate}).run
    page.get(f"{live_server.url}/runs/{run['id']}")
    wait_steps(page, {"first": "succeeded", "blocked": "running", "last": "pending"})
    page.find_element(By.ID, "cancel").click()
    alert = wait_for(lambda: read(page, lambda: page.switch_to.alert), what="the confirm dialog")
    alert.accept()
    wait_for(lambda: run_status(page) == "cancelled", what="the run to be cancelled")
    assert has(page, "#retry") and not has(page, "#cancel")
    store().set(f"gate:{gate}", 1)
    wait_for(
        lambda: manager.get(run["id"])["steps"][1]["status"] == "succeeded",
        what="the running step to finish on its own",
    )
    assert manager.get(run["id"])["steps"][2]["status"] == "pending"
    assert executions(run["id"], "last") == 0


def test_runs_list_filters_searches_and_opens_runs(page, live_server, manager, screenshot_dir):
    for i, plan in enumerate(("free", "pro", "free")):
        manager.start(
            "signup",
            {
                "email": f"user{i}-{uuid.uuid4().hex[:6]}@example.com",
                "name": f"User {i}",
                "plan": plan,
            },
            idempotency_key=f"signup-{uuid.uuid4().hex[:8]}",
        )
    failed = manager.start("flaky", {"fatal": True}).run
    key = f"order-{uuid.uuid4().hex[:8]}"
    keyed = manager.start("flaky", {"fail_times": 1}, idempotency_key=key).run
    wait_for(lambda: manager.get(failed["id"])["status"] == "failed", what="the fatal run to fail")
    wait_for(lambda: manager.get(keyed["id"])["status"] == "succeeded", what="the run to succeed")

    def failed_count() -> str:  # counts are cached for a few seconds: reload until fresh
        page.get(f"{live_server.url}/")
        settled(page)
        return page.find_element(By.CSS_SELECTOR, '[data-count-for="failed"] .count').text

    wait_for(lambda: failed_count() != "0", what="the failed run to be counted")
    # the newest page follows runs even when all are finished (a new one may start)
    assert page.find_element(By.ID, "live").get_attribute("data-live") == "true"
    shoot(page, screenshot_dir, "runs")
    assert has(page, f'tr[data-run-id="{failed["id"]}"]')

    page.find_element(By.CSS_SELECTOR, '.status-tabs a[data-count-for="failed"]').click()
    wait_for(lambda: at(page, lambda u: "status=failed" in u), what="the failed filter")
    settled(page)
    badges = {b.text for b in page.find_elements(By.CSS_SELECTOR, ".runs-table .badge")}
    assert badges == {"failed"}

    Select(page.find_element(By.ID, "workflow")).select_by_value("gated")
    wait_for(lambda: at(page, lambda u: "workflow=gated" in u), what="the workflow filter")
    settled(page)
    assert not has(page, f'tr[data-run-id="{failed["id"]}"]')

    search = page.find_element(By.ID, "q")
    search.send_keys(key)
    search.submit()
    # searched within the failed gated runs: none, and a way to search everywhere
    wait_for(lambda: has(page, "#search-everywhere"), what="the offer to search all runs")
    assert not has(page, ".runs-table")
    page.find_element(By.ID, "search-everywhere").click()
    wait_for(lambda: has(page, f'tr[data-run-id="{keyed["id"]}"]'), what="the keyed run")
    page.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{keyed["id"]}"] a').click()
    wait_for(lambda: at(page, lambda u: u.endswith(f"/runs/{keyed['id']}")), what="the run's page")
    assert (
        page.find_element(By.ID, "flower-link")
        .get_attribute("href")
        .startswith("http://127.0.0.1:")
    )


def db_count(manager, **filters) -> int:
    from app.engine.queries import RunFilter, count_matching

    with manager.engine.connect() as c:
        return count_matching(c, RunFilter(**filters), 100_000)


def tab_count(driver, status: str) -> str | None:
    return read(
        driver,
        lambda: driver.find_element(By.CSS_SELECTOR, f'[data-count-for="{status}"] .count').text,
    )


def shown_runs(driver) -> set[str] | None:
    return read(
        driver,
        lambda: {
            r.get_attribute("data-run-id")
            for r in driver.find_elements(By.CSS_SELECTOR, ".runs-table tr[data-run-id]")
        },
    )


def test_bulk_retry_from_a_filtered_list(page, live_server, manager, screenshot_dir):
    gate = uuid.uuid4().hex[:10]
    ids = {str(manager.start("fixable", {"gate": gate}).run["id"]) for _ in range(3)}
    wait_for(
        lambda: {manager.get(i)["status"] for i in ids} == {"failed"},
        timeout=60,
        what="the three runs to fail",
    )
    page.get(f"{live_server.url}/")
    Select(page.find_element(By.ID, "workflow")).select_by_value("fixable")
    wait_for(lambda: at(page, lambda u: "workflow=fixable" in u), what="the workflow filter")
    search = page.find_element(By.ID, "q")
    search.send_keys(f"input.gate={gate}")
    search.submit()
    wait_for(lambda: at(page, lambda u: "q=input.gate" in u), what="the search")

    def failed_tab() -> str | None:  # counts are cached for a few seconds: reload until fresh
        page.refresh()
        return tab_count(page, "failed")

    wait_for(lambda: failed_tab() == "3", what="the failed tab to count the three runs")
    assert tab_count(page, "succeeded") == "0"
    page.find_element(By.CSS_SELECTOR, '.status-tabs a[data-count-for="failed"]').click()
    wait_for(lambda: at(page, lambda u: "status=failed" in u), what="the failed filter")
    assert shown_runs(page) == ids
    assert page.find_element(By.ID, "matching-count").text == "3"
    assert not has(page, "#bulk-cancel")  # failed runs cannot be cancelled

    listing = page.current_url
    page.find_element(By.ID, "bulk-retry").click()  # not selected yet: the form refuses
    assert page.current_url == listing

    store().set(f"gate:{gate}", 1)  # the operator fixes the cause; a new run now succeeds
    later = str(manager.start("fixable", {"gate": gate}).run["id"])
    wait_for(lambda: manager.get(later)["status"] == "succeeded", what="the new run to succeed")
    page.find_element(By.CSS_SELECTOR, ".status-tabs a.tab").click()  # "All", filters kept

    def all_matching() -> str | None:
        page.refresh()
        return read(page, lambda: page.find_element(By.ID, "matching-count").text)

    wait_for(lambda: all_matching() == "4", what="four runs to match")
    assert "workflow=fixable" in page.current_url and "status=" not in page.current_url
    page.find_element(By.ID, "select-all-matching").click()
    shoot(page, screenshot_dir, "bulk-select")
    page.find_element(By.ID, "bulk-retry").click()
    wait_for(lambda: at(page, lambda u: "/bulk/retry" in u), what="the confirmation")
    assert page.find_element(By.ID, "confirm-count").text == "4"
    assert page.find_element(By.ID, "eligible-count").text == "3"
    shoot(page, screenshot_dir, "bulk-confirm")

    page.find_element(By.ID, "confirm-bulk").click()
    wait_for(lambda: has(page, "#bulk-result"), what="the result page")
    assert page.find_element(By.ID, "changed-count").text == "3"
    assert page.find_element(By.ID, "skipped-count").text == "1"
    changed = {
        a.get_attribute("data-run-id") for a in page.find_elements(By.CSS_SELECTOR, "#changed a")
    }
    assert changed == ids
    skipped = page.find_element(By.CSS_SELECTOR, f'#skipped tr[data-run-id="{later}"] .reason')
    assert skipped.text == "cannot retry a run that is succeeded"
    shoot(page, screenshot_dir, "bulk-result")
    wait_for(
        lambda: {manager.get(i)["status"] for i in ids} == {"succeeded"},
        timeout=60,
        what="the retried runs to succeed",
    )
    page.find_element(By.ID, "back-to-runs").click()
    wait_for(lambda: at(page, lambda u: "workflow=fixable" in u), what="back to the list")
    wait_for(lambda: failed_tab() == "0", what="no failed run left under these filters")
    assert {b.text for b in page.find_elements(By.CSS_SELECTOR, ".runs-table .badge")} == {
        "succeeded"
    }


def test_tabs_count_within_the_workflow_and_the_short_id_is_searchable(page, live_server, manager):
    failed = manager.start("flaky", {"fatal": True}).run
    run_id = str(failed["id"])
    wait_for(lambda: manager.get(run_id)["status"] == "failed", what="the run to fail")
    for workflow in ("flaky", "gated"):
        expected = f"{db_count(manager, name=workflow, status='failed'):,}"

        def fresh(workflow: str = workflow) -> str | None:
            page.get(f"{live_server.url}/?workflow={workflow}")
            return tab_count(page, "failed")

        wait_for(lambda expected=expected: fresh() == expected, what=f"{workflow}'s failed count")
        page.find_element(By.CSS_SELECTOR, '.status-tabs a[data-count-for="failed"]').click()
        wait_for(lambda: at(page, lambda u: "status=failed" in u), what="the failed tab")
        assert f"workflow={workflow}" in page.current_url  # the tab keeps the workflow
        if expected == "0":
            assert "No runs match these filters" in page.find_element(By.CSS_SELECTOR, ".empty").text
        else:
            badges = {b.text for b in page.find_elements(By.CSS_SELECTOR, ".runs-table .badge")}
            assert badges == {"failed"}

    page.find_element(By.ID, "clear-filters").click()
    wait_for(lambda: at(page, lambda u: u.rstrip("/") == live_server.url), what="all runs")
    # the list refreshes itself: read the row once it holds still
    short = wait_for(lambda: read(page, lambda: page.find_element(
        By.CSS_SELECTOR, f'tr[data-run-id="{run_id}"] code').text), what="the run's short id")
    assert short == run_id[:8]
    search = page.find_element(By.ID, "q")
    search.send_keys(short)
    search.submit()
    wait_for(lambda: at(page, lambda u: f"q={short}" in u), what="the short-id search")
    shown = wait_for(lambda: read(page, lambda: shown_runs(page)), what="the search results")
    assert run_id in shown
    assert all(i.startswith(short) for i in shown)

    page.find_element(By.ID, "api-docs-link").click()  # signed in: no Bearer header needed
    wait_for(lambda: at(page, lambda u: u.endswith("/api/docs")), what="the API docs")
    assert page.find_element(By.TAG_NAME, "h1").text.startswith("Stepwise API")


def test_fork_from_a_step_starts_a_new_run_that_reuses_the_steps_before_it(
    page, live_server, manager, screenshot_dir
):
    source = manager.start("flaky", {"fail_times": 0}).run["id"]
    wait_for(lambda: manager.get(source)["status"] == "succeeded", what="the source run to succeed")
    page.get(f"{live_server.url}/runs/{source}")
    wait_steps(page, {"prepare": "succeeded", "call_api": "succeeded", "finish": "succeeded"})
    page.find_element(By.CSS_SELECTOR, 'tr[data-step="call_api"] button.fork').click()
    alert = wait_for(lambda: read(page, lambda: page.switch_to.alert), what="the confirm dialog")
    assert "call_api" in alert.text
    alert.accept()

    wait_for(lambda: at(page, lambda u: "/runs/" in u and str(source) not in u),
             what="the forked run's page")
    forked = page.current_url.rsplit("/", 1)[1]
    assert "Forked from step call_api" in page.find_element(By.CSS_SELECTOR, ".flash-ok").text
    wait_steps(page, {"prepare": "succeeded", "call_api": "succeeded", "finish": "succeeded"})
    wait_for(lambda: run_status(page) == "succeeded", what="the fork to succeed")
    link = page.find_element(By.CSS_SELECTOR, f'a[href$="/runs/{source}"]')
    assert link.text == str(source)[:8]
    reused = page.find_element(By.CSS_SELECTOR, 'tr[data-step="prepare"]').text
    assert f"output reused from {str(source)[:8]}" in reused
    assert "reused" not in page.find_element(By.CSS_SELECTOR, 'tr[data-step="call_api"]').text
    shoot(page, screenshot_dir, "run-forked")

    # the fork reused prepare's output and ran call_api and finish again; the source is untouched
    assert executions(forked, "prepare") == 0
    assert executions(forked, "call_api") == 1 and executions(forked, "finish") == 1
    assert manager.get(forked)["forked_from"] == {"run_id": str(source), "step": "call_api"}
    src = manager.get(source)
    assert src["status"] == "succeeded" and executions(source, "call_api") == 1
    assert src["forked_from"] is None
