"""tradepipe's performance figures on this machine, against the targets, in one run.

Starts real `tradepipe serve` daemons on loopback ports (each measurement with a fresh temporary
directory and journal) and measures:

1. ingest: acknowledged signals per second and ack latency at concurrency 1, 8 and 64, beside
   "the floor" (a minimal aiohttp receiver in this file, run as a subprocess, that parses the
   JSON body and does one INSERT + commit into a WAL, synchronous=FULL SQLite file per request);
   tradepipe with its subscription disabled (the ack path only) and enabled (paper trading);
2. signal to submit: a signal's `received_at` to its entry order's `created_at` (the order row
   is journaled just before the broker's submit call), with 1 and with 50 subscriptions, and
   with 1 subscription again with every SPEC §13 risk limit set (none reached): the pre-trade
   check's cost;
3. drain: 2,000 reversal signals over 20 tickers posted at concurrency 64, from the first POST
   until every signal is 'processed' in the journal;
4. footprint: RSS idle and after the drain, `tradepipe --help` wall time, start to /healthz.

    .venv/bin/python bench/run.py            # full run, under 5 minutes
    .venv/bin/python bench/run.py --quick    # about a minute, smaller samples
    .venv/bin/python bench/run.py --json /tmp/figures.json
    .venv/bin/python bench/run.py --submit-only   # part 2 alone: without and with limits

Targets are printed beside the figures as met/missed; they are a report, never an assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shlex
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

TOKEN = "bench_" + "Q" * 4 + "w8e7r6t5y4u3i2o1p0a9s8d7"
HERE = Path(__file__).resolve()
TICKERS = 20
MB = 1024 * 1024

# (key, description, comparison, threshold, unit): report-only, never asserted.
TARGETS = {
    "ingest_ratio_c8": ("ingest ≥ 0.8× floor at concurrency 8", ">=", 0.8, "×"),
    "ack_p99_c1": ("ack p99 ≤ 2 ms at concurrency 1", "<=", 2.0, "ms"),
    "submit_p99_1": ("signal→submit p99 ≤ 5 ms, 1 subscription", "<=", 5.0, "ms"),
    "submit_p99_50": ("signal→submit p99 ≤ 50 ms, 50 subscriptions", "<=", 50.0, "ms"),
    "limits_ratio": ("signal→submit p99 with every risk limit ≤ 1.1× without", "<=", 1.1, "×"),
    "drain_rate": ("drain ≥ 1,000 signals/s", ">=", 1000.0, "/s"),
    "rss": ("RSS ≤ 120 MB", "<=", 120.0, "MB"),
    "help_time": ("`tradepipe --help` ≤ 0.3 s", "<=", 0.3, "s"),
}


@dataclass(frozen=True)
class Sizes:
    ingest_rounds: int
    ingest_requests: int
    ingest_requests_trading: int
    warmup: int
    submit_signals_1: int
    submit_signals_50: int
    drain_signals: int
    help_runs: int
    startup_runs: int


FULL = Sizes(3, 2000, 750, 200, 300, 40, 2000, 5, 3)
QUICK = Sizes(1, 600, 300, 100, 100, 10, 2000, 5, 3)


# -- the floor: a minimal durable receiver ------------------------------------------------------


def floor_serve(port: int, db_path: Path) -> None:
    """Parse the JSON body, one INSERT + commit (WAL, synchronous=FULL), answer 200."""
    from aiohttp import web

    conn = sqlite3.connect(str(db_path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS signals (id INTEGER PRIMARY KEY, received_at TEXT NOT NULL,"
        " body TEXT NOT NULL, status TEXT NOT NULL)"
    )
    conn.commit()

    async def webhook(request: web.Request) -> web.Response:
        received_at = datetime.now(UTC).isoformat()
        body = await request.read()
        payload = json.loads(body)
        cursor = conn.execute(
            "INSERT INTO signals (received_at, body, status) VALUES (?, ?, 'accepted')",
            (received_at, json.dumps(payload)),
        )
        conn.commit()
        return web.json_response({"ok": True, "signal_id": cursor.lastrowid})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/webhook/{token}", webhook)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# -- processes ----------------------------------------------------------------------------------

PROCESSES: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tradepipe_command() -> list[str]:
    """The console script next to this interpreter (what a user runs), else `-m tradepipe`."""
    script = Path(sys.executable).parent / "tradepipe"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tradepipe"]


def clean_env() -> dict[str, str]:
    # A TRADEPIPE_* variable in the caller's shell (a port, a drill pause) must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    db: Path
    startup_s: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook/{TOKEN}"

    def rss_mb(self) -> float:
        return proc_status_kb(self.process.pid, "VmRSS") / 1024

    def hwm_mb(self) -> float:
        return proc_status_kb(self.process.pid, "VmHWM") / 1024


def proc_status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def start(command: list[str], port: int, directory: Path, db: Path) -> Server:
    log = (directory / "server.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=clean_env(), cwd=directory
    )
    PROCESSES.append(process)
    log.close()
    deadline = started + 60
    while time.perf_counter() < deadline:
        if healthy(port):
            return Server(process, port, directory, db, time.perf_counter() - started)
        if process.poll() is not None:
            break
        time.sleep(0.005)
    stop(process)
    tail = (directory / "server.log").read_text(errors="replace")[-2000:]
    raise SystemExit(f"{shlex.join(command)} did not become ready:\n{tail}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    with contextlib.suppress(ValueError):
        PROCESSES.remove(process)


def stop_all() -> None:
    for process in list(PROCESSES):
        with contextlib.suppress(Exception):
            stop(process)


@contextlib.contextmanager
def tradepipe(
    accounts: int = 1, subscriptions: int = 1, *, enabled: bool = True, limits: bool = False
) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="tradepipe-bench-") as name:
        directory = Path(name)
        port = free_port()
        config = write_config(
            directory, port, accounts, subscriptions, enabled=enabled, limits=limits
        )
        server = start(
            [*tradepipe_command(), "--config", str(config), "serve"],
            port,
            directory,
            directory / "bench.db",
        )
        try:
            yield server
        finally:
            stop(server.process)


@contextlib.contextmanager
def floor() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="tradepipe-floor-") as name:
        directory = Path(name)
        port = free_port()
        db = directory / "floor.db"
        command = [sys.executable, str(HERE), "--floor-serve", str(port), str(db)]
        server = start(command, port, directory, db)
        try:
            yield server
        finally:
            stop(server.process)


# Every SPEC §13 limit set, none reached by the bench's buys of 1 at 100 on a 1e9 account.
ALL_LIMITS = [
    'max_order_value = "50%"',
    "max_open_positions = 1000",
    'max_gross_exposure = "1000%"',
    'max_daily_loss = "50%"',
    'max_drawdown = "50%"',
    "max_orders_per_minute = 1000000000",
]
SUBSCRIPTION_LIMITS = [
    "max_trades_per_day = 100000000",
    "max_consecutive_losses = 1000",
    "loss_cooldown = 60",
]


def write_config(
    directory: Path,
    port: int,
    accounts: int,
    subscriptions: int,
    *,
    enabled: bool,
    limits: bool = False,
) -> Path:
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "shutdown_grace = 1",
        "",
        "[journal]",
        'path = "bench.db"',
        "",
        "[reconciliation]",
        "interval = 0",
        "",
    ]
    for n in range(accounts):
        lines += [f"[accounts.paper{n}]", 'broker = "paper"', "cash = 1000000000", ""]
        # The bench posts thousands of signals a minute: the runaway-alert guard's default
        # (60 orders a minute) would trip the account, so it is raised out of the way.
        risk = ALL_LIMITS if limits else ["max_orders_per_minute = 1000000000"]
        lines += [f"[accounts.paper{n}.risk]", *risk, ""]
    lines += [
        "[strategies.bench]",
        f'token = "{TOKEN}"',
        "rate_limit_per_minute = 1000000",
        "rate_limit_per_hour = 1000000",
        "",
    ]
    for n in range(subscriptions):
        lines += [
            f"[subscriptions.bench-{n}]",
            'strategy = "bench"',
            f'account = "paper{n % accounts}"',
            f"enabled = {'true' if enabled else 'false'}",
            "allow_add = true",
            *(SUBSCRIPTION_LIMITS if limits else []),
            "",
        ]
    path = directory / "tradepipe.toml"
    path.write_text("\n".join(lines))
    return path


def read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


# -- load ---------------------------------------------------------------------------------------


def reversal_body(n: int, prefix: str) -> bytes:
    """Signal n of a burst: tickers in turn, each one alternating buy and sell (reversals)."""
    ticker, round_ = n % TICKERS, n // TICKERS
    return json.dumps(
        {
            "ticker": f"T{ticker}",
            "action": "buy" if round_ % 2 == 0 else "sell",
            "quantity": 1,
            "signalPrice": 100 + (round_ % 10) / 10,
            "id": f"{prefix}-{n}",
        }
    ).encode()


def buy_body(n: int, prefix: str) -> bytes:
    """An entry and nothing else: a buy that adds (allow_add) to a long position."""
    return json.dumps(
        {
            "ticker": f"T{n % TICKERS}",
            "action": "buy",
            "quantity": 1,
            "signalPrice": 100,
            "id": f"{prefix}-{n}",
        }
    ).encode()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


def latency_summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values, 0.50),
        "p90_ms": percentile(values, 0.90),
        "p99_ms": percentile(values, 0.99),
        "max_ms": max(values),
    }


async def post_all(
    url: str, bodies: list[bytes], concurrency: int, *, keep_latencies: bool = False
) -> dict[str, Any]:
    """Post every body with `concurrency` workers; latency per request, acks per second."""
    latencies: list[float] = []
    failures = 0
    queue = iter(bodies)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for body in queue:
            sent = time.perf_counter()
            async with session.post(url, data=body) as response:
                raw = await response.read()
                ok = response.status == 200
            latencies.append((time.perf_counter() - sent) * 1000)
            if not ok or not json.loads(raw).get("ok"):
                failures += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    result = {
        "requests": len(bodies),
        "failures": failures,
        "seconds": elapsed,
        "per_second": (len(bodies) - failures) / elapsed,
        **latency_summary(latencies),
    }
    if keep_latencies:
        result["latencies"] = latencies
    return result


# -- 1. ingest ----------------------------------------------------------------------------------


INGEST_TARGETS = (
    ("floor", "floor (aiohttp + 1 INSERT + commit)"),
    ("ack_only", "tradepipe, subscription disabled (ack path)"),
    ("trading", "tradepipe, subscription enabled (paper trading)"),
)


def ingest(sizes: Sizes, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each concurrency: the three servers in turn, `ingest_rounds` times (a fresh server and
    journal each time, so drift on the machine hits all three alike); the rounds are pooled."""
    rows = []
    for concurrency in (1, 8, 64):
        pooled: dict[str, list[dict[str, Any]]] = {key: [] for key, _ in INGEST_TARGETS}
        for _ in range(sizes.ingest_rounds):
            for key, _label in INGEST_TARGETS:
                pooled[key].append(ingest_once(key, concurrency, sizes))
        for key, label in INGEST_TARGETS:
            runs = pooled[key]
            latencies = [ms for run in runs for ms in run.pop("latencies")]
            acked = sum(run["requests"] - run["failures"] for run in runs)
            row = {
                "server": key,
                "label": label,
                "concurrency": concurrency,
                "requests": sum(run["requests"] for run in runs),
                "failures": sum(run["failures"] for run in runs),
                "per_second": acked / sum(run["seconds"] for run in runs),
                "per_second_by_round": [run["per_second"] for run in runs],
                **latency_summary(latencies),
            }
            rows.append(row)
            say(
                f"  ingest {key:<8} c={concurrency:<3} {row['per_second']:7.0f}/s"
                f" (rounds {', '.join(f'{r:.0f}' for r in row['per_second_by_round'])})"
                f"  p99 {row['p99_ms']:.2f} ms"
            )
    floor_rate = {r["concurrency"]: r["per_second"] for r in rows if r["server"] == "floor"}
    for row in rows:
        row["ratio_to_floor"] = row["per_second"] / floor_rate[row["concurrency"]]
    return rows


def ingest_once(key: str, concurrency: int, sizes: Sizes) -> dict[str, Any]:
    trading = key == "trading"
    server_cm = floor() if key == "floor" else tradepipe(enabled=trading)
    requests = sizes.ingest_requests_trading if trading else sizes.ingest_requests
    with server_cm as server:
        warm = [reversal_body(n, "warm") for n in range(sizes.warmup)]
        asyncio.run(post_all(server.url, warm, concurrency))
        if trading:  # measure from a standing start: the warm-up's trading done
            wait_processed(server.db, sizes.warmup, timeout=120)
        bodies = [reversal_body(n, "load") for n in range(requests)]
        return asyncio.run(post_all(server.url, bodies, concurrency, keep_latencies=True))


def wait_processed(db: Path, count: int, timeout: float, poll: float = 0.01) -> float:
    """Seconds until `count` signals are 'processed' (read-only polling of the journal)."""
    started = time.perf_counter()
    with contextlib.closing(read_only(db)) as conn:
        while True:
            (done,) = conn.execute(
                "SELECT count(*) FROM signals WHERE status = 'processed'"
            ).fetchone()
            if done >= count:
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{done} of {count} signals processed after {timeout} s")
            time.sleep(poll)


# -- 2. signal to submit ------------------------------------------------------------------------


def signal_to_submit(
    subscriptions: int, signals: int, say: Callable[[str], None], *, limits: bool = False
) -> dict:
    """One signal at a time: each is posted once the previous one is processed, so the figure
    is the pipeline's own latency, not a queue's. `limits`: every risk limit set."""
    with tradepipe(accounts=subscriptions, subscriptions=subscriptions, limits=limits) as server:
        ids: list[int] = []
        with contextlib.closing(read_only(server.db)) as conn:

            async def run() -> None:
                async with aiohttp.ClientSession() as session:
                    for n in range(-5, signals):  # five warm-up signals, not reported
                        async with session.post(server.url, data=buy_body(n, "s2s")) as response:
                            answer = await response.json()
                        signal_id = answer["signal_id"]
                        if n >= 0:
                            ids.append(signal_id)
                        deadline = time.perf_counter() + 60
                        while time.perf_counter() < deadline:
                            (status,) = conn.execute(
                                "SELECT status FROM signals WHERE id = ?", (signal_id,)
                            ).fetchone()
                            if status != "accepted":
                                break
                            await asyncio.sleep(0.001)

            asyncio.run(run())
            rows = conn.execute(
                "SELECT s.id, s.received_at, s.status, o.created_at FROM signals s"
                " JOIN orders o ON o.signal_id = s.id AND o.role = 'entry'"
                f" WHERE s.id IN ({','.join('?' * len(ids))})",
                ids,
            ).fetchall()
            statuses = dict(
                conn.execute(
                    "SELECT d.status, count(*) FROM deliveries d"
                    f" WHERE d.signal_id IN ({','.join('?' * len(ids))}) GROUP BY d.status",
                    ids,
                ).fetchall()
            )
    per_order: list[float] = []
    last_per_signal: dict[int, float] = {}
    for signal_id, received_at, _status, created_at in rows:
        ms = (
            datetime.fromisoformat(created_at) - datetime.fromisoformat(received_at)
        ).total_seconds() * 1000
        per_order.append(ms)
        last_per_signal[signal_id] = max(ms, last_per_signal.get(signal_id, 0.0))
    last = list(last_per_signal.values())
    result = {
        "subscriptions": subscriptions,
        "limits": limits,
        "signals": len(ids),
        "entry_orders": len(per_order),
        "entry_orders_expected": len(ids) * subscriptions,
        "delivery_statuses": statuses,
        "p50_ms": percentile(per_order, 0.50),
        "p99_ms": percentile(per_order, 0.99),
        "max_ms": max(per_order),
        "last_order_p50_ms": percentile(last, 0.50),
        "last_order_p99_ms": percentile(last, 0.99),
        "samples": per_order,
    }
    say(
        f"  signal→submit subs={subscriptions:<3}{' limits' if limits else ''}"
        f" p50 {result['p50_ms']:.2f} ms"
        f"  p99 {result['p99_ms']:.2f} ms  ({len(per_order)} orders)"
    )
    return result


# -- 3. drain, 4. footprint ---------------------------------------------------------------------


def drain(signals: int, say: Callable[[str], None]) -> dict[str, Any]:
    with tradepipe() as server:
        time.sleep(2)  # settle: the idle footprint after start
        rss_idle = server.rss_mb()
        bodies = [reversal_body(n, "drain") for n in range(signals)]
        started = time.perf_counter()
        posted = asyncio.run(post_all(server.url, bodies, 64))
        wait_processed(server.db, signals - posted["failures"], timeout=600, poll=0.005)
        elapsed = time.perf_counter() - started
        rss_after = server.rss_mb()
        hwm = server.hwm_mb()
        with contextlib.closing(read_only(server.db)) as conn:
            deliveries = dict(
                conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall()
            )
            orders = dict(
                conn.execute("SELECT role, count(*) FROM orders GROUP BY role").fetchall()
            )
    result = {
        "signals": signals,
        "concurrency": 64,
        "post_failures": posted["failures"],
        "all_acked_s": posted["seconds"],
        "drained_s": elapsed,
        "per_second": signals / elapsed,
        "delivery_statuses": deliveries,
        "orders_by_role": orders,
        "rss_idle_mb": rss_idle,
        "rss_after_drain_mb": rss_after,
        "rss_peak_mb": hwm,
    }
    say(f"  drain {signals} signals in {elapsed:.2f} s = {result['per_second']:.0f}/s")
    return result


def help_time(runs: int) -> dict[str, Any]:
    command = [*tradepipe_command(), "--help"]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=clean_env())
        times.append(time.perf_counter() - started)
    return {"command": shlex.join(command), "runs_s": times, "median_s": statistics.median(times)}


def startup_time(runs: int) -> dict[str, Any]:
    times = []
    for _ in range(runs):
        with tradepipe() as server:
            times.append(server.startup_s)
    return {"runs_s": times, "median_s": statistics.median(times)}


# -- report -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        from importlib.metadata import version

        tradepipe_version = version("tradepipe")
    except Exception:
        tradepipe_version = "unknown"
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_mb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB),
        "python": sys.version.split()[0],
        "python_full": sys.version,
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "aiohttp": aiohttp.__version__,
        "tradepipe": tradepipe_version,
        "temp_dir": tempfile.gettempdir(),
    }


def verdict(key: str, value: float) -> dict[str, Any]:
    description, comparison, threshold, unit = TARGETS[key]
    met = value >= threshold if comparison == ">=" else value <= threshold
    return {
        "target": f"{comparison} {threshold:g} {unit}".strip(),
        "description": description,
        "value": value,
        "met": met,
    }


def add_submit(results: dict[str, Any], add: Callable[[str, str, float], None]) -> None:
    submit = {(r["subscriptions"], r["limits"]): r for r in results["signal_to_submit"]}
    add("signal→submit p99 ms, 1 subscription", "submit_p99_1", submit[1, False]["p99_ms"])
    if (50, False) in submit:
        add("signal→submit p99 ms, 50 subscriptions", "submit_p99_50", submit[50, False]["p99_ms"])
    if (1, True) in submit:
        add(
            "signal→submit p99 ms, 1 subscription, every risk limit",
            "submit_p99_1",
            submit[1, True]["p99_ms"],
        )
        ratio = submit[1, True]["p99_ms"] / submit[1, False]["p99_ms"]
        add("signal→submit p99 with limits / without", "limits_ratio", ratio)


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []

    def add(name: str, key: str, value: float) -> None:
        rows.append({"figure": name, **verdict(key, value)})

    if "ingest" not in results:  # --submit-only
        add_submit(results, add)
        return rows
    by = {(r["server"], r["concurrency"]): r for r in results["ingest"]}

    add(
        "ingest/floor, c=8, subscription disabled",
        "ingest_ratio_c8",
        by["ack_only", 8]["ratio_to_floor"],
    )
    add(
        "ingest/floor, c=8, subscription enabled",
        "ingest_ratio_c8",
        by["trading", 8]["ratio_to_floor"],
    )
    add("ack p99 ms, c=1, subscription disabled", "ack_p99_c1", by["ack_only", 1]["p99_ms"])
    add("ack p99 ms, c=1, subscription enabled", "ack_p99_c1", by["trading", 1]["p99_ms"])
    add_submit(results, add)
    if "drain" not in results:  # --submit-only
        return rows
    drained = results["drain"]
    add(
        f"drain signals/s ({drained['signals']:,} reversals, c=64)",
        "drain_rate",
        drained["per_second"],
    )
    add("RSS MB idle after start", "rss", results["drain"]["rss_idle_mb"])
    add("RSS MB after the drain", "rss", results["drain"]["rss_after_drain_mb"])
    add("`tradepipe --help` median s", "help_time", results["help"]["median_s"])
    return rows


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        "tradepipe benchmarks",
        f"command:  {results['command']}",
        f"mode:     {results['mode']}   started {results['started_at']}"
        f"   took {results['duration_s']:.0f} s",
        f"machine:  {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable),"
        f" {m['memory_mb']} MB, Python {m['python']}, SQLite {m['sqlite']},"
        f" aiohttp {m['aiohttp']}, {m['platform']}",
        "",
        "1. ingest (acknowledged signals; each ack follows a synchronous=FULL commit)",
    ]
    out.append(
        table(
            [
                "server",
                "conc",
                "requests",
                "fail",
                "acks/s",
                "×floor",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
            ],
            [
                [
                    r["label"],
                    str(r["concurrency"]),
                    str(r["requests"]),
                    str(r["failures"]),
                    f"{r['per_second']:.0f}",
                    f"{r['ratio_to_floor']:.2f}",
                    f"{r['p50_ms']:.2f}",
                    f"{r['p90_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                    f"{r['max_ms']:.2f}",
                ]
                for r in results["ingest"]
            ],
        )
    )
    out += ["", "2. signal → submit (received_at → entry order created_at; one signal at a time)"]
    out.append(
        table(
            [
                "subscriptions",
                "limits",
                "signals",
                "entry orders",
                "p50 ms",
                "p99 ms",
                "max ms",
                "last/signal p50",
                "last/signal p99",
            ],
            [
                [
                    str(r["subscriptions"]),
                    "all" if r["limits"] else "defaults",
                    str(r["signals"]),
                    f"{r['entry_orders']}/{r['entry_orders_expected']}",
                    f"{r['p50_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                    f"{r['max_ms']:.2f}",
                    f"{r['last_order_p50_ms']:.2f}",
                    f"{r['last_order_p99_ms']:.2f}",
                ]
                for r in results["signal_to_submit"]
            ],
        )
    )
    d = results["drain"]
    out += [
        "",
        "3. drain (reversals over 20 tickers, posted at concurrency 64)",
        f"   {d['signals']} signals: all acknowledged after {d['all_acked_s']:.2f} s, all"
        f" processed after {d['drained_s']:.2f} s = {d['per_second']:.0f} signals/s"
        f" ({d['post_failures']} failed posts)",
        f"   deliveries: {d['delivery_statuses']}   orders: {d['orders_by_role']}",
        "",
        "4. footprint",
        f"   RSS idle after start {d['rss_idle_mb']:.1f} MB, after the drain"
        f" {d['rss_after_drain_mb']:.1f} MB (peak {d['rss_peak_mb']:.1f} MB)",
        f"   `tradepipe --help` median {results['help']['median_s']:.3f} s"
        f" (runs: {', '.join(f'{t:.3f}' for t in results['help']['runs_s'])})",
        f"   start to /healthz 200 median {results['startup']['median_s']:.3f} s"
        f" (runs: {', '.join(f'{t:.3f}' for t in results['startup']['runs_s'])})",
        "",
        "targets (report only)",
    ]
    out.append(
        table(
            ["figure", "value", "target", "verdict"],
            [
                [t["figure"], f"{t['value']:.3g}", t["target"], "met" if t["met"] else "missed"]
                for t in results["targets"]
            ],
        )
    )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples, about a minute")
    parser.add_argument(
        "--json", type=Path, default=HERE.parent / "results.json", help="where to write figures"
    )
    parser.add_argument(
        "--submit-only",
        action="store_true",
        help="only signal→submit, 1 subscription, without then with every risk limit (twice)",
    )
    parser.add_argument("--floor-serve", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_serve:
        floor_serve(int(args.floor_serve[0]), Path(args.floor_serve[1]))
        return

    sizes = QUICK if args.quick else FULL

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    began = time.perf_counter()
    results: dict[str, Any] = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "mode": "quick" if args.quick else "full",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "sizes": sizes.__dict__,
    }
    try:
        if args.submit_only:
            say("2. signal to submit, without and with every risk limit")
            results["signal_to_submit"] = submit_with_and_without_limits(sizes, say)
            return finish(results, began, args.json, submit_only=True)
        say("1. ingest")
        results["ingest"] = ingest(sizes, say)
        say("2. signal to submit")
        results["signal_to_submit"] = [
            signal_to_submit(1, sizes.submit_signals_1, say),
            signal_to_submit(1, sizes.submit_signals_1, say, limits=True),
            signal_to_submit(50, sizes.submit_signals_50, say),
        ]
        for row in results["signal_to_submit"]:
            row.pop("samples")
        say("3. drain")
        results["drain"] = drain(sizes.drain_signals, say)
        say("4. footprint")
        results["help"] = help_time(sizes.help_runs)
        results["startup"] = startup_time(sizes.startup_runs)
    finally:
        stop_all()
    finish(results, began, args.json)


def submit_with_and_without_limits(sizes: Sizes, say: Callable[[str], None]) -> list[dict]:
    """Signal→submit with 1 subscription, without then with every limit, twice in turn (drift
    on the machine hits both alike); each pair's samples pooled."""
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(2):
        for limits in (False, True):
            runs[limits].append(signal_to_submit(1, sizes.submit_signals_1, say, limits=limits))
    pooled = []
    for found in runs.values():
        samples = [ms for run in found for ms in run.pop("samples")]
        pooled.append(
            {
                **found[0],
                "signals": sum(r["signals"] for r in found),
                "entry_orders": sum(r["entry_orders"] for r in found),
                "entry_orders_expected": sum(r["entry_orders_expected"] for r in found),
                "p50_ms": percentile(samples, 0.50),
                "p99_ms": percentile(samples, 0.99),
                "max_ms": max(samples),
            }
        )
    return pooled


def finish(results: dict[str, Any], began: float, path: Path, *, submit_only: bool = False) -> None:
    results["duration_s"] = time.perf_counter() - began
    results["targets"] = evaluate(results)
    print(submit_report(results) if submit_only else report(results))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nfigures written to {path}")


def submit_report(results: dict[str, Any]) -> str:
    out = ["signal → submit, 1 subscription (received_at → entry order created_at)"]
    for r in results["signal_to_submit"]:
        words = "every risk limit set" if r["limits"] else "default limits"
        out.append(
            f"  {words:<22} {r['entry_orders']} orders  p50 {r['p50_ms']:.2f} ms"
            f"  p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.2f} ms"
        )
    for t in results["targets"]:
        out.append(
            f"  {t['figure']}: {t['value']:.3g} ({t['target']}: {'met' if t['met'] else 'missed'})"
        )
    return "\n".join(out)


if __name__ == "__main__":
    main()
