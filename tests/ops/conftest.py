"""Fixtures for the operations tests: real workers, beats, Flower and the web app."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.environment import TEST_ENV
from tests.support.polling import wait_for
from tests.support.processes import ROOT, VENV_BIN, Process, Worker
from tests.support.workflows import store

# subprocesses also load the scheduled example workflow
OPS_ENV = {"WORKFLOW_MODULES": TEST_ENV["WORKFLOW_MODULES"] + ",app.workflows.signup_digest"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        process, sep, command = line.partition(":")
        if sep and process.strip() == name:
            return command.strip()
    raise KeyError(name)


def celery(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``celery -A workers ...`` like an operator would, in the test environment."""
    import os

    env = {**os.environ, **TEST_ENV, **OPS_ENV, "LOG_FORMAT": "text"}
    return subprocess.run(
        [str(VENV_BIN / "celery"), "-A", "workers", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def celery_json(*args: str) -> Any:
    out = celery(*args, "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout.strip().splitlines()[-1])


def beat(schedule_file: Path, env: dict[str, str]) -> Process:
    return Process(
        [str(VENV_BIN / "celery"), "-A", "workers", "beat", "--loglevel", "INFO",
         "--schedule", str(schedule_file)],
        env={**OPS_ENV, **env},
        name="beat",
    )


@pytest.fixture(scope="module")
def ops_worker(database: str) -> Iterator[Worker]:
    w = Worker(concurrency=3, env=OPS_ENV).start()
    yield w
    w.stop()


def open_gate(gate: str) -> None:
    store().set(f"gate:{gate}", "1")


def wait_arrived(gate: str, run_id: Any, timeout: float = 30) -> None:
    wait_for(
        lambda: store().sismember(f"arrived:{gate}", str(run_id)),
        timeout=timeout,
        what=f"run {run_id} to reach the gate {gate}",
    )


def gate_id() -> str:
    return uuid.uuid4().hex[:10]


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for raw in text.splitlines():
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
    return lines
