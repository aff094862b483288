"""Where a signal's CPU goes on this machine: the evidence behind the drain's and the trading
ingest's bounds in docs/benchmarks.md.

1. daemon: the serve process's CPU time (utime + stime from /proc/PID/stat) per signal, for a
   burst of reversals (bench.run's, over 20 tickers) posted at concurrency 64 to a real
   `tradepipe serve`, once with the subscription disabled (the ack path: guards, validation,
   the journaled signal, marked processed) and once enabled (paper trading). The difference is
   what trading a reversal costs: an exit and an entry, their fills, positions, equity
   snapshots and audit events.
2. in process: the same reversals handed straight to an engine (no HTTP; the journal with
   group commit, as the daemon runs it), wall time per signal and the share of it spent inside
   SQLite's `execute` (the connection is wrapped in a timing proxy for this run only).

    .venv/bin/python -m bench.cpu                  # 2,000 signals, 2 rounds
    .venv/bin/python -m bench.cpu --signals 4000 --rounds 3

Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import run as b

WARM = 200


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime (clock ticks)


def daemon(signals: int, *, enabled: bool) -> tuple[float, float]:
    """(ms of server CPU per signal, signals processed per second) for one burst."""
    with b.tradepipe(enabled=enabled) as server:
        warm = [b.reversal_body(n, "warm") for n in range(WARM)]
        asyncio.run(b.post_all(server.url, warm, 64))
        b.wait_processed(server.db, WARM, timeout=600, poll=0.005)
        bodies = [b.reversal_body(n, "cpu") for n in range(signals)]
        before, started = cpu_seconds(server.process.pid), time.perf_counter()
        asyncio.run(b.post_all(server.url, bodies, 64))
        b.wait_processed(server.db, WARM + signals, timeout=600, poll=0.005)
        elapsed = time.perf_counter() - started
        used = cpu_seconds(server.process.pid) - before
    return used / signals * 1000, signals / elapsed


class TimedConnection:
    """The journal's connection, with the time spent in `execute` added up."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "seconds", 0.0)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        started = time.perf_counter()
        try:
            return self._conn.execute(sql, params)
        finally:
            object.__setattr__(self, "seconds", self.seconds + time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)


def in_process(signals: int) -> tuple[float, float]:
    """(ms per signal, ms of it inside SQLite's execute) through the engine alone: the test
    suite's engine harness (tests/test_engine.py: signals journaled as the webhook journals
    them, the real paper broker), its order-rate guard raised out of the way as in bench.run."""
    from tests.helpers import write_config
    from tests.test_engine import Harness

    account = "[accounts.paper.risk]\nmax_orders_per_minute = 1000000000\n"

    async def main(directory: Path) -> tuple[float, float]:
        harness = Harness(write_config(directory, account, subscription="allow_add = true\n"))
        timed = TimedConnection(harness.journal.conn)
        harness.journal.conn = timed  # this run only: every statement timed
        harness.journal.group_commits()
        await harness.engine.start()
        started = time.perf_counter()
        for first in range(0, signals, 64):  # in bursts, as the webhook hands them over
            for n in range(first, min(signals, first + 64)):
                signal_id, signal = harness.journal_signal(json.loads(b.reversal_body(n, "cpu")))
                harness.engine.enqueue(signal_id, "trend", signal)
            await harness.engine.drain()
        await harness.journal.durable()
        elapsed = time.perf_counter() - started
        await harness.engine.stop()
        harness.journal.close()
        return elapsed / signals * 1000, timed.seconds / signals * 1000

    with tempfile.TemporaryDirectory(prefix="tradepipe-cpu-") as name:
        return asyncio.run(main(Path(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signals", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    try:
        for round_ in range(1, args.rounds + 1):
            ack, ack_rate = daemon(args.signals, enabled=False)
            trading, trading_rate = daemon(args.signals, enabled=True)
            wall, sql = in_process(args.signals)
            print(
                f"round {round_}: daemon CPU per signal: ack path {ack:.2f} ms ({ack_rate:.0f}/s),"
                f" trading {trading:.2f} ms ({trading_rate:.0f}/s), so a reversal's trading"
                f" {trading - ack:.2f} ms; in process {wall:.2f} ms per signal, {sql:.2f} ms"
                " of it in SQLite's execute"
            )
    finally:
        b.stop_all()


if __name__ == "__main__":
    main()
