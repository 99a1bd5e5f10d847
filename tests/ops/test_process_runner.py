"""``make run``'s process runner: supervisord configured from the Procfile.

The real runner (scripts/run.py) on free ports with this session's database
and broker: a SIGKILLed worker is started again by supervisord while the API
keeps answering, and the restarted worker runs workflows.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from app.settings import Settings
from tests.ops.conftest import OPS_ENV, free_port
from tests.support.polling import wait_for
from tests.support.processes import ROOT, VENV_BIN, Process

pytestmark = pytest.mark.slow


def runner_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stepwise_run", ROOT / "scripts" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_supervisor_config_has_one_program_per_procfile_line(tmp_path: Path):
    run = runner_module()
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "release: alembic upgrade head\n\n# a comment\n"
        "web: gunicorn app --bind 127.0.0.1:${PORT:-8000}\nworker: celery -A workers worker\n"
    )
    processes = run.read_procfile(procfile)
    assert processes == {
        "release": "alembic upgrade head",
        "web": "gunicorn app --bind 127.0.0.1:${PORT:-8000}",
        "worker": "celery -A workers worker",
    }
    config = run.supervisor_config(processes, ["web", "worker"], tmp_path, Settings())
    assert config.count("[program:") == 2 and "[program:release]" not in config
    assert "command=/bin/bash -c 'exec gunicorn app --bind 127.0.0.1:${PORT:-8000}'" in config
    assert "stopwaitsecs=75" in config  # the worker: step timeout (60) + 15 to finish steps
    assert config.count("autorestart=true") == 2


def test_a_procfile_line_without_a_name_is_refused(tmp_path: Path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("web gunicorn app\n")
    with pytest.raises(SystemExit, match="Procfile:1: not a 'name: command' line"):
        runner_module().read_procfile(procfile)


def test_a_configuration_error_is_one_line_and_nothing_starts(tmp_path: Path):
    env = {**os.environ, **OPS_ENV, "PORT": "eighty"}
    out = subprocess.run(
        [sys.executable, "scripts/run.py", "--state-dir", str(tmp_path), "web"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 2
    assert out.stderr == "stepwise: configuration error: PORT must be an integer, got 'eighty'\n"
    assert not (tmp_path / "supervisord.conf").exists()


class System:
    def __init__(self, state: Path) -> None:
        self.port = free_port()
        self.state = state
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = Process(
            [sys.executable, "scripts/run.py", "--state-dir", str(state), "--no-release",
             "web", "worker"],
            env={**OPS_ENV, "PORT": str(self.port), "WEB_CONCURRENCY": "2",
                 "WORKER_CONCURRENCY": "1", "LOG_FORMAT": "text"},
            name="runner",
        )

    def ctl(self, *args: str) -> str:
        out = subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", str(self.state / "supervisord.conf"), *args],
            capture_output=True, text=True, timeout=30, check=False,
        )
        return out.stdout.strip()

    def worker_pid(self) -> int:
        text = self.ctl("pid", "worker")
        return int(text) if text.isdigit() else 0

    def worker_running(self) -> bool:
        return self.ctl("status", "worker").split()[1:2] == ["RUNNING"]


@pytest.fixture
def system(database: str, tmp_path: Path) -> Iterator[System]:
    s = System(tmp_path)
    s.process.start()
    try:
        wait_for(lambda: "Stepwise is up:" in s.process.output() or not s.process.alive,
                 timeout=120, what="the runner to report the system up")
        assert s.process.alive, s.process.output()
        yield s
    finally:
        s.process.stop(timeout=60)


class Poller(threading.Thread):
    """GETs the runs list until stopped, counting statuses (transport errors as 0)."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.statuses: Counter[int] = Counter()
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as client:
            deadline = time.monotonic() + 120
            while not self.halt.is_set() and time.monotonic() < deadline:
                try:
                    self.statuses[client.get("/api/v1/workflows?limit=1").status_code] += 1
                except httpx.TransportError:
                    self.statuses[0] += 1
                time.sleep(0.05)


def test_a_sigkilled_worker_is_restarted_while_the_api_keeps_answering_and_stop_ends_all(
    system: System,
):
    output = system.process.output()
    for where in ("/api/v1/workflows", "/api/docs", "/metrics", "restart worker"):
        assert where in output, output
    first = system.worker_pid()
    assert first and system.worker_running()

    poller = Poller(system.base)
    poller.start()
    try:
        wait_for(lambda: poller.statuses[200] >= 5, timeout=30, what="the API to answer")
        os.killpg(first, signal.SIGKILL)  # the worker and its pool, as the OOM killer might
        wait_for(lambda: system.worker_pid() not in (0, first) and system.worker_running(),
                 timeout=60, what="supervisord to start a new worker")
        answered_before = poller.statuses[200]
        wait_for(lambda: poller.statuses[200] >= answered_before + 5, timeout=30,
                 what="the API to go on answering")
    finally:
        poller.halt.set()
        poller.join(10)
    assert set(poller.statuses) == {200}, poller.statuses
    assert "exited: worker (terminated by SIGKILL; not expected)" in system.process.output()

    # the new worker runs workflows: a signup started through the API succeeds
    started = httpx.post(
        f"{system.base}/api/v1/workflows/signup",
        json={"input": {"email": f"runner-{first}@example.com", "name": "Ada", "plan": "free"}},
        timeout=10,
    )
    assert started.status_code == 202, started.text

    def finished() -> str | None:
        run = httpx.get(f"{system.base}/api/v1/workflows/{started.json()['id']}", timeout=5).json()
        return run["status"] if run["status"] in ("succeeded", "failed") else None

    assert wait_for(finished, timeout=60, what="the signup to finish") == "succeeded"

    # Ctrl-C / SIGTERM stops every process it started
    worker = system.worker_pid()
    system.process.signal_group(signal.SIGTERM)
    assert system.process.wait(60), system.process.output()
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{system.base}/healthz", timeout=2)
