"""Dashboard fixtures: the real app behind a real HTTP server in a thread,
headless Debian Chromium driven by selenium, and a real Celery worker."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from app import create_app
from app.settings import get_settings, set_settings
from tests.support.processes import Worker

TOKEN = "dashboard-test-token"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def make_app(**overrides: object) -> Flask:
    """An app for these settings; the process-wide settings are put back after."""
    original = get_settings()
    try:
        app = create_app(original.override(**overrides))
    finally:
        set_settings(original)
    app.config["TESTING"] = True
    return app


@pytest.fixture(scope="module")
def app(database: str) -> Flask:
    return make_app(api_token=None)


@pytest.fixture(scope="module")
def token_app(database: str) -> Flask:
    return make_app(api_token=TOKEN)


class LiveServer:
    """``make_server`` on a free loopback port, serving in a daemon thread."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def live_server(token_app: Flask) -> Iterator[LiveServer]:
    with LiveServer(token_app) as server:
        yield server


@pytest.fixture(scope="module")
def worker(database: str) -> Iterator[Worker]:
    w = Worker(concurrency=2).start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail("Chromium is missing: run scripts/browser.sh (make test does)")
    profile = tempfile.mkdtemp(prefix="stepwise-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where page screenshots go: docs/screenshots when DASHBOARD_SCREENSHOTS
    names it (to refresh the README's images), else a temporary folder."""
    target = os.environ.get("DASHBOARD_SCREENSHOTS")
    if target:
        path = Path(target)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def client(app: Flask):  # type: ignore[no-untyped-def]
    """The Flask test client of the module's app."""
    return app.test_client()
