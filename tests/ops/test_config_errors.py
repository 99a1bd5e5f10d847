"""A configuration error is one line naming the variable, for every entry point."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.ops.conftest import OPS_ENV, free_port, procfile_command
from tests.support.processes import ROOT, VENV_BIN

MESSAGE = "configuration error: WORKFLOW_RETRY_ATTEMPTS must be an integer, got 'three'"


def run(command: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ, **OPS_ENV, "WORKFLOW_RETRY_ATTEMPTS": "three", "PORT": str(free_port()),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(["bash", "-c", f"exec {command}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.parametrize("process", ["web", "worker", "beat", "flower"])
def test_each_procfile_process_prints_one_line_and_exits(process):
    out = run(procfile_command(process))
    assert out.returncode != 0
    lines = [line for line in (out.stderr + out.stdout).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].endswith(MESSAGE), out.stderr + out.stdout


def test_the_operator_cli_prints_one_line_and_exits():
    out = run("flask --app app workflows list")
    assert out.returncode == 1
    assert out.stderr == f"stepwise: {MESSAGE}\n" and out.stdout == ""


def test_two_web_processes_share_no_control_socket(tmp_path):
    """gunicorn would put one at ~/.gunicorn/gunicorn.ctl (or $XDG_RUNTIME_DIR) for all."""
    from tests.reliability.procfile import procfile_web

    env = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path), "WEB_CONCURRENCY": "1"}
    with procfile_web(env) as first, procfile_web(env) as second:
        assert first.base != second.base
        assert sorted(p.name for p in tmp_path.iterdir()) == []
