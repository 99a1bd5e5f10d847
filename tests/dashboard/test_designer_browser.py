"""The designer (/designer) in headless Chromium, signed in, against a real worker:
build a two-step workflow on the canvas, see it checked while editing, save it,
start a run and watch it succeed on its run page."""

from __future__ import annotations

import uuid

import pytest
from selenium.webdriver.common.by import By

from tests.dashboard.test_browser import at, has, read, run_status, shoot, sign_in
from tests.support.polling import wait_for

pytestmark = pytest.mark.usefixtures("worker")


def node(driver, name: str):
    return driver.find_element(By.CSS_SELECTOR, f'#nodes g.node[data-step="{name}"]')


def fill(driver, element_id: str, text: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def problem_codes(driver) -> set[tuple[str, str]]:
    items = driver.find_elements(By.CSS_SELECTOR, "#problems li")
    return {(i.get_attribute("data-where"), i.get_attribute("data-code")) for i in items}


def test_a_two_step_workflow_is_built_on_the_canvas_saved_started_and_succeeds(
    browser, live_server, screenshot_dir
):
    sign_in(browser, live_server.url)
    browser.get(f"{live_server.url}/designer")
    assert browser.find_element(By.CSS_SELECTOR, "h1").text == "Workflow designer"

    browser.find_element(By.CSS_SELECTOR, '#palette [data-action="send_email"]').click()
    wait_for(lambda: has(browser, '#nodes g.node[data-step="send_email_1"]'), what="a first step")
    fill(browser, "param-to", "{{ input.email }}")
    fill(browser, "param-subject", "Welcome")
    fill(browser, "param-body", "Hello from the designer")
    browser.find_element(By.CSS_SELECTOR, '#palette [data-action="notify_chat"]').click()
    wait_for(lambda: has(browser, '#nodes g.node[data-step="notify_chat_1"]'), what="a second step")

    # checked while editing: the chat step has no text yet and the workflow no name
    wait_for(
        lambda: {("steps.notify_chat_1.params", "bad_params"), ("name", "bad_name")}
        <= (read(browser, lambda: problem_codes(browser)) or set()),
        what="validation messages",
    )
    assert "notify_chat_1" in browser.find_element(By.ID, "problems").text

    # connect on the canvas: select the email step, Connect, click the chat step
    node(browser, "send_email_1").click()
    browser.find_element(By.ID, "connect").click()
    node(browser, "notify_chat_1").click()
    wait_for(
        lambda: has(browser, '#edges path.edge[data-from="send_email_1"][data-to="notify_chat_1"]'),
        what="an arrow from the email step to the chat step",
    )
    fill(browser, "param-text", "sent {{ steps.send_email_1.message_id }}")
    name = f"designed_{uuid.uuid4().hex[:8]}"
    fill(browser, "wf-name", name)
    wait_for(lambda: has(browser, "#no-problems"), what="the definition to check clean")
    shoot(browser, screenshot_dir, "designer")

    browser.find_element(By.ID, "save").click()
    wait_for(
        lambda: (read(browser, lambda: browser.find_element(By.ID, "save-status").text) or "")
        == "Saved version 1.",
        what="the save",
    )
    assert has(browser, '#versions li[data-version="1"]')

    fill(browser, "input-email", "designer@example.com")
    browser.find_element(By.ID, "start-run").click()
    wait_for(lambda: at(browser, lambda u: "/runs/" in u), what="the run page")
    assert name in browser.page_source
    wait_for(lambda: run_status(browser) == "succeeded", timeout=60, what="the run to succeed")
    steps = browser.find_elements(By.CSS_SELECTOR, "tr.step[data-step]")
    assert [s.get_attribute("data-step") for s in steps] == ["send_email_1", "notify_chat_1"]
    shoot(browser, screenshot_dir, "designer-run")
