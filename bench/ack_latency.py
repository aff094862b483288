"""Webhook acknowledgement latency on loopback, against a real `tradepipe serve`.

Starts the daemon on a free port with a temporary paper config and journal, posts unique
signals (each acknowledged only after its synchronous=FULL commit; the engine trades them on the
paper broker meanwhile) and prints p50/p90/p99/max and throughput at each concurrency.

    python bench/ack_latency.py --requests 2000 --concurrency 1 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

TOKEN = "bench_" + "Q" * 4 + "w8e7r6t5y4u3i2o1p0a9s8d7"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(directory: Path, port: int, *, enabled: bool = True) -> Path:
    path = directory / "tradepipe.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}

[journal]
path = "bench.db"

[accounts.paper]
broker = "paper"
cash = 1000000000

[strategies.bench]
token = "{TOKEN}"
rate_limit_per_minute = 1000000
rate_limit_per_hour = 1000000

[subscriptions.bench-paper]
strategy = "bench"
account = "paper"
allow_add = true
enabled = {"true" if enabled else "false"}
"""
    )
    return path


def start_daemon(config: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tradepipe", "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("tradepipe serve did not become ready")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_load(url: str, requests: int, concurrency: int, offset: int) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    counter = iter(range(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for n in counter:
            action = "buy" if n % 2 == 0 else "sell"
            body = json.dumps(
                {
                    "ticker": f"T{n % 20}",
                    "action": action,
                    "quantity": 1,
                    "signalPrice": 100,
                    "id": f"bench-{offset + n}",
                }
            )
            started = time.perf_counter()
            async with session.post(url, data=body) as response:
                await response.read()
                if response.status != 200:
                    failures += 1
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": requests,
        "failures": failures,
        "per_second": requests / elapsed,
        "p50_ms": statistics.median(latencies),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--ack-only",
        action="store_true",
        help="disable the subscription: measure acknowledgement without trading work",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        config = write_config(Path(directory), port, enabled=not args.ack_only)
        daemon = start_daemon(config, port)
        try:
            url = f"http://127.0.0.1:{port}/webhook/{TOKEN}"
            asyncio.run(run_load(url, 100, 1, offset=10**9))  # warm-up, not reported
            results = []
            for index, concurrency in enumerate(args.concurrency):
                offset = index * args.requests
                results.append(asyncio.run(run_load(url, args.requests, concurrency, offset)))
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    print(
        f"{'conc':>5} {'requests':>9} {'fail':>5} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7}"
        f" {'p99 ms':>7} {'max ms':>7}"
    )
    for r in results:
        print(
            f"{r['concurrency']:>5} {r['requests']:>9} {r['failures']:>5} {r['per_second']:>8.0f}"
            f" {r['p50_ms']:>7.2f} {r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
