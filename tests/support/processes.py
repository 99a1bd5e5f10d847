"""Real Celery worker (and other) subprocesses for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from tests.support.environment import TEST_ENV
from tests.support.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


class Process:
    """A subprocess in its own process group, its output captured to a file."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, name: str = "proc"):
        self.args = args
        self.env = {**os.environ, **TEST_ENV, **(env or {})}
        self.env["PATH"] = f"{VENV_BIN}{os.pathsep}{self.env.get('PATH', '')}"
        self.log_path = Path(tempfile.mkstemp(prefix=f"stepwise-{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker and its pool children."""
        self.signal_group(signal.SIGKILL)
        self.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.alive:
            self.signal_group(signal.SIGTERM)
            if not self.wait(timeout):
                self.kill()
        if hasattr(self, "_log"):
            self._log.close()

    def wait(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False


class Worker(Process):
    def __init__(
        self,
        *,
        concurrency: int = 2,
        pool: str = "prefork",
        env: dict[str, str] | None = None,
        queues: str | None = None,
        node: str | None = None,
        wrap: list[str] | None = None,
    ) -> None:
        self.node = node or f"test-{uuid.uuid4().hex[:8]}@localhost"
        # e.g. ["unshare", "--pid", "--fork"]: a worker in its own pid namespace, as on another host
        args = [*(wrap or []),
            str(VENV_BIN / "celery"),
            "-A",
            "workers",
            "worker",
            "-E",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--hostname",
            self.node,
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ]
        if queues:
            args += ["--queues", queues]
        super().__init__(args, env=env, name="worker")

    def start(self, ready_timeout: float = 60) -> Worker:
        super().start()
        wait_for(
            lambda: "ready." in self.output() or not self.alive,
            timeout=ready_timeout,
            what="worker to be ready",
        )
        if not self.alive:
            raise RuntimeError(f"worker exited at start:\n{self.output()}")
        return self

    def child_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return [int(pid) for pid in out.split()]
