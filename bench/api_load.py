"""The load generator for ``bench.api``, run as its own process: N concurrent
clients POSTing a start request for a fixed time. Prints one JSON line:
status counts and every latency in seconds.

Closed loop by default (each client sends as soon as its last answer came:
this finds the saturation throughput, and latency is then just queueing).
With ``--rate R`` it is open loop: requests are due at a fixed total rate and
each latency is measured from when the request was *due*, so a slow server
cannot hide its queueing (no coordinated omission)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import httpx

HEADERS = {"Content-Type": "application/json"}


async def post_once(
    http: httpx.AsyncClient, url: str, body: bytes, statuses: Counter[int]
) -> bool:
    """One POST, its status counted; False (and the error printed) on a transport error."""
    try:
        response = await http.post(url, content=body, headers=HEADERS)
    except httpx.HTTPError as exc:
        statuses[-1] += 1
        print(json.dumps({"transport_error": repr(exc)}), flush=True)
        return False
    statuses[response.status_code] += 1
    return True


async def client(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    until: float,
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    while time.monotonic() < until:
        t0 = time.perf_counter()
        if await post_once(http, url, body, statuses):
            latencies.append(time.perf_counter() - t0)


async def paced_client(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    due_times: list[float],
    latencies: list[float],
    statuses: Counter[int],
) -> None:
    for due in due_times:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if await post_once(http, url, body, statuses):
            latencies.append(time.perf_counter() - due)


async def run_paced(url: str, clients: int, seconds: float, rate: float) -> dict[str, object]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    body = json.dumps({"input": {}}).encode()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        start = time.perf_counter() + 0.2
        total = int(rate * seconds)
        schedule = [start + i / rate for i in range(total)]
        await asyncio.gather(
            *(
                paced_client(http, url, body, schedule[i::clients], latencies, statuses)
                for i in range(clients)
            )
        )
        elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "statuses": dict(statuses), "latencies": latencies}


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
    parser.add_argument("--rate", type=float, default=0, help="open loop at this total req/s")
    args = parser.parse_args()
    if args.rate:
        result = asyncio.run(run_paced(args.url, args.clients, args.seconds, args.rate))
    else:
        result = asyncio.run(run(args.url, args.clients, args.seconds))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
