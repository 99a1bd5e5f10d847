"""The load generator for ``bench.api``, run as its own process: N concurrent
clients POSTing a start request for a fixed time. Prints one JSON line:
status counts and every latency in seconds."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import httpx


async def client(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    until: float,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < until:
        t0 = time.perf_counter()
        try:
            response = await http.post(url, content=body, headers=headers)
            statuses[response.status_code] += 1
        except httpx.HTTPError as exc:
            statuses[-1] += 1
            print(json.dumps({"transport_error": repr(exc)}), flush=True)
            continue
        latencies.append(time.perf_counter() - t0)


async def run(url: str, clients: int, seconds: float) -> dict[str, object]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    body = json.dumps({"input": {}}).encode()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        start = time.monotonic()
        until = start + seconds
        await asyncio.gather(
            *(client(http, url, body, until, latencies, statuses) for _ in range(clients))
        )
        elapsed = time.monotonic() - start
    return {"elapsed": elapsed, "statuses": dict(statuses), "latencies": latencies}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.clients, args.seconds))), flush=True)


if __name__ == "__main__":
    main()
