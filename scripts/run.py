"""``make run``: the Procfile's processes under supervisord, restarted when they crash.

The Procfile stays the one description of the processes: this script reads
it at every start, writes a supervisord configuration from its lines into the
state directory (``var/`` by default), runs the ``release`` line once
(migrations), and then runs supervisord in the foreground. A process that
dies (a SIGKILLed worker, an out-of-memory kill) is started again by
supervisord while the others keep serving; ``supervisorctl`` restarts one by
hand (see README "Running it"). Ctrl-C stops them all, each with its own
grace period (a worker gets ``WORKFLOW_STEP_TIMEOUT`` plus a margin to finish
its running steps).

Settings are validated first, so a configuration error is one line naming the
variable, before anything starts.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from app.settings import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
UP_TIMEOUT = 90.0
EXIT_CONFIG = 2


def read_procfile(path: Path) -> dict[str, str]:
    """``name: command`` lines, in order; blank lines and ``#`` comments skipped."""
    processes: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, command = text.partition(":")
        if not sep or not name.strip().isidentifier() or not command.strip():
            raise SystemExit(f"{path}:{number}: not a 'name: command' line: {line!r}")
        processes[name.strip()] = command.strip()
    return processes


def _ini(value: str) -> str:
    """supervisord expands ``%(name)s`` in values; a literal % is written %%."""
    return value.replace("%", "%%")


def stop_wait(name: str, settings: Settings) -> int:
    """Seconds supervisord waits after SIGTERM before SIGKILL."""
    if name == "worker":  # warm shutdown: running steps finish and checkpoint
        return int(settings.workflow_step_timeout) + 15
    return 15


def supervisor_config(
    processes: dict[str, str], names: list[str], state: Path, settings: Settings
) -> str:
    sock = state / "supervisor.sock"
    sections = [
        "; written by scripts/run.py from the Procfile at each start; edit the Procfile instead",
        "[supervisord]",
        "nodaemon=true",
        "logfile=/dev/fd/1",
        "logfile_maxbytes=0",
        "loglevel=info",
        f"pidfile={_ini(str(state / 'supervisord.pid'))}",
        f"childlogdir={_ini(str(state))}",
        f"directory={_ini(str(ROOT))}",
        "",
        "[unix_http_server]",
        f"file={_ini(str(sock))}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_ini(str(sock))}",
    ]
    for name in names:
        command = "/bin/bash -c " + shlex.quote("exec " + processes[name])
        sections += [
            "",
            f"[program:{name}]",
            f"command={_ini(command)}",
            f"directory={_ini(str(ROOT))}",
            "autostart=true",
            "autorestart=true",
            "startsecs=2",
            "startretries=10",
            "stopsignal=TERM",
            f"stopwaitsecs={stop_wait(name, settings)}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            "stdout_logfile=/dev/fd/1",
            "stdout_logfile_maxbytes=0",
        ]
    return "\n".join(sections) + "\n"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return bool(response.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500  # Flower behind basic auth answers 401: it is up
    except OSError:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def addresses(settings: Settings, names: list[str], state: Path) -> list[tuple[str, str]]:
    web = f"http://127.0.0.1:{settings.port}"
    lines: list[tuple[str, str]] = []
    if "web" in names:
        lines += [
            ("API", f"{web}/api/v1/workflows"),
            ("dashboard", f"{web}/"),
            ("API docs", f"{web}/api/docs  (OpenAPI: {web}/api/openapi.json)"),
            ("metrics", f"{web}/metrics"),
        ]
    if "flower" in names:
        lines.append(("Flower", settings.flower_url or f"http://127.0.0.1:{settings.flower_port}"))
    ctl = f"{BIN / 'supervisorctl'} -c {state / 'supervisord.conf'}"
    lines += [("processes", f"{ctl} status"), ("restart one", f"{ctl} restart worker")]
    return lines


def _all_running(config: Path) -> bool:
    """Every program past supervisord's startsecs (RUNNING), not STARTING or BACKOFF."""
    out = subprocess.run(
        [str(BIN / "supervisorctl"), "-c", str(config), "status"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    lines = [line.split() for line in out.stdout.splitlines() if line.strip()]
    return bool(lines) and all(len(f) > 1 and f[1] == "RUNNING" for f in lines)


def wait_until_up(
    settings: Settings, names: list[str], supervisord: subprocess.Popen[bytes], config: Path
) -> bool:
    checks = [lambda: _all_running(config)]
    if "web" in names:
        checks.append(lambda: _answers(f"http://127.0.0.1:{settings.port}/healthz"))
    if "flower" in names:
        checks.append(lambda: _listening(settings.flower_port))
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        if supervisord.poll() is not None:
            return False
        if all(check() for check in checks):
            return True
        time.sleep(0.5)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="processes to run (default: all but release)")
    parser.add_argument("--procfile", type=Path, default=ROOT / "Procfile")
    parser.add_argument("--state-dir", type=Path, default=ROOT / "var")
    parser.add_argument("--no-release", action="store_true", help="skip the release line")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"stepwise: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    processes = read_procfile(args.procfile)
    names = args.names or [n for n in processes if n != "release"]
    unknown = [n for n in names if n not in processes]
    if unknown:
        print(f"stepwise: not in {args.procfile}: {', '.join(unknown)}", file=sys.stderr)
        return EXIT_CONFIG

    state = args.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if "release" in processes and not args.no_release:
        release = subprocess.run(["/bin/bash", "-c", processes["release"]], cwd=ROOT, env=env)
        if release.returncode != 0:
            print(f"stepwise: release failed ({processes['release']})", file=sys.stderr)
            return release.returncode
    config = state / "supervisord.conf"
    config.write_text(supervisor_config(processes, names, state, settings))

    supervisord = subprocess.Popen([str(BIN / "supervisord"), "-c", str(config)], cwd=ROOT, env=env)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if supervisord.poll() is None:
            supervisord.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if wait_until_up(settings, names, supervisord, config):
        width = max(len(label) for label, _ in addresses(settings, names, state))
        print("\nStepwise is up:", flush=True)
        for label, where in addresses(settings, names, state):
            print(f"  {label:<{width}}  {where}", flush=True)
        print(flush=True)
    elif supervisord.poll() is None:
        print(f"stepwise: not all processes answered within {UP_TIMEOUT:.0f} s; "
              f"see the log above", file=sys.stderr, flush=True)
    return supervisord.wait()


if __name__ == "__main__":
    sys.exit(main())
