"""API: ``POST /api/v1/workflows/<name>`` from 50 concurrent clients for 20 s.

Two phases: closed loop (each client sends again as soon as it is answered:
the saturation throughput, where latency is only queueing — 50 clients at
R req/s wait 50/R s on average, whatever the code does), then open loop at
half and a third of that rate (latency from when each request was due: what a
client sees from a server that is busy but not overloaded).

The web process runs as the Procfile runs it (gunicorn, ``app:create_app()``,
4 sync workers) on a free loopback port; the clients are a second process
(``bench.api_load``). No Celery worker runs: this measures the API (validate,
insert run and steps, send the chain), not the steps. If the route is not
there yet (the API is built on its own branch), the script says so and reports
``"skipped"`` instead of a figure.

    python -m bench.api [--smoke]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.harness import VENV_BIN, parse_args, percentile, report, table, wait_until
from bench.services import ROOT, scratch

WORKFLOW = "bench_noop"
# open-loop phases, as fractions of the measured saturation rate
PACED_FRACTIONS = (0.5, 0.33)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    args = parse_args(__doc__ or "")
    clients, seconds = (5, 1.0) if args.smoke else (50, 20.0)
    with scratch() as s:
        port = free_port()
        env = {**os.environ, **s.env, "PYTHONPATH": str(ROOT), "PORT": str(port)}
        fd, log_name = tempfile.mkstemp(prefix="stepwise-bench-web-", suffix=".log")
        os.close(fd)
        log = open(log_name, "ab")  # noqa: SIM115
        web = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "app:create_app()",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "4",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _up(base) or web.poll() is not None, timeout=60, what="gunicorn")
            if web.poll() is not None:
                raise RuntimeError(Path(log_name).read_text()[-4000:])
            url = f"{base}/api/v1/workflows/{WORKFLOW}"
            probe = httpx.post(url, json={"input": {}}, timeout=10)
            if probe.status_code != 202:
                result = {
                    "bench": "api",
                    "smoke": args.smoke,
                    "skipped": True,
                    "reason": f"POST {url} answered {probe.status_code}, not 202: "
                    "the API route is not in this build",
                }
                report(f"api: skipped ({result['reason']})", result)
                return
            data = _load(env, url, clients, seconds)
            saturation = len(data["latencies"]) / data["elapsed"]
            paced_runs = []
            for fraction in PACED_FRACTIONS:
                rate = max(1.0, round(saturation * fraction, 1))
                paced_runs.append((rate, _load(env, url, clients, seconds, rate)))
        finally:
            web.terminate()
            web.wait(30)
            Path(log_name).unlink(missing_ok=True)

    result = build_result(data, clients, seconds, args.smoke)
    result["paced"] = [
        {
            "rate_req_per_s": rate,
            **{k: v for k, v in build_result(paced, clients, seconds, args.smoke).items()
               if k in ("requests", "statuses", "transport_errors", "requests_per_s", "p50_ms",
                        "p99_ms")},
        }
        for rate, paced in paced_runs
    ]
    report(render(result), result)


def _load(
    env: dict[str, str], url: str, clients: int, seconds: float, rate: float = 0
) -> dict[str, Any]:
    command = [
        str(VENV_BIN / "python"), "-m", "bench.api_load", "--url", url,
        "--clients", str(clients), "--seconds", str(seconds),
    ]
    if rate:
        command += ["--rate", str(rate)]
    load = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    lines = load.stdout.strip().splitlines()
    data: dict[str, Any] = json.loads(lines[-1])
    # transport errors (status -1), by kind: e.g. a keep-alive connection the
    # server closed just as a request went out on it
    errors: dict[str, int] = {}
    for line in lines[:-1]:
        kind = json.loads(line).get("transport_error", "?").split("(")[0]
        errors[kind] = errors.get(kind, 0) + 1
    data["transport_errors"] = errors
    return data


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def build_result(data: dict[str, Any], clients: int, seconds: float, smoke: bool) -> dict[str, Any]:
    ms = [x * 1000 for x in data["latencies"]]
    return {
        "bench": "api",
        "smoke": smoke,
        "clients": clients,
        "seconds": seconds,
        "requests": len(ms),
        "statuses": data["statuses"],
        "transport_errors": data.get("transport_errors", {}),
        "requests_per_s": round(len(ms) / data["elapsed"], 1),
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "target_p99_ms": 20,
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        [
            "closed loop (saturation)",
            result["requests"],
            result["requests_per_s"],
            result["p50_ms"],
            result["p99_ms"],
            json.dumps(result["statuses"]),
        ]
    ]
    for paced in result["paced"]:
        rows.append(
            [
                f"open loop at {paced['rate_req_per_s']:g} req/s",
                paced["requests"],
                paced["requests_per_s"],
                paced["p50_ms"],
                paced["p99_ms"],
                json.dumps(paced["statuses"]),
            ]
        )
    return table(
        f"POST /api/v1/workflows/{WORKFLOW}, {result['clients']} clients, {result['seconds']:g} s",
        ["phase", "requests", "req/s", "p50 ms", "p99 ms", "statuses"],
        rows,
    )


if __name__ == "__main__":
    main()
