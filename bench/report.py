"""`tradepipe report --json` on a journal of about 10,000 fills.

Builds the journal through the journal's own writes (a signal with `signalPrice` and `time`, a
delivery's order, its fill) — the rows `tradepipe serve` would write, without waiting for a
daemon to trade 10,000 times — over 4 subscriptions and 8 tickers (one of them ES, × 50), then
runs the real CLI as a subprocess and prints the wall time of each run.

    python bench/report.py --fills 10000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

TOKEN = "bench_" + "Q" * 4 + "w8e7r6t5y4u3i2o1p0a9s8d7"
TICKERS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META", "GOOG", "ESZ2026"]
SUBSCRIPTIONS = ["s1", "s2", "s3", "s4"]


def write_config(directory: Path) -> Path:
    path = directory / "tradepipe.toml"
    subscriptions = "".join(
        f'\n[subscriptions.{name}]\nstrategy = "trend"\naccount = "paper"\n'
        for name in SUBSCRIPTIONS
    )
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 1

[journal]
path = "journal.db"

[accounts.paper]
broker = "paper"
cash = 100000000

[strategies.trend]
token = "{TOKEN}"
{subscriptions}"""
    )
    return path


def build(journal_path: Path, fills: int, seed: int = 7) -> None:
    from tradepipe.journal import Journal

    rng = random.Random(seed)
    journal = Journal.open(journal_path)
    held: dict[tuple[str, str], int] = {}
    at = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    with journal.transaction():
        for n in range(fills):
            sub, ticker = rng.choice(SUBSCRIPTIONS), rng.choice(TICKERS)
            position = held.get((sub, ticker), 0)
            # Mostly alternate in and out, sometimes add or reverse.
            side = (
                ("sell" if position > 0 else "buy")
                if position and rng.random() < 0.8
                else rng.choice(["buy", "sell"])
            )
            quantity = rng.randint(1, 10)
            held[(sub, ticker)] = position + (quantity if side == "buy" else -quantity)
            base = 5000 if ticker.startswith("ES") else 100
            signal_price = Decimal(base) + Decimal(rng.randint(-400, 400)) / 4
            price = signal_price + Decimal(rng.randint(-2, 3)) / 4
            at += timedelta(seconds=rng.randint(5, 600))
            payload = {
                "ticker": ticker,
                "action": side,
                "quantity": str(quantity),
                "signalPrice": str(signal_price),
                "time": (at - timedelta(seconds=1)).isoformat(),
            }
            signal_id = journal.record_signal(
                strategy="trend", received_at=at.isoformat(), source="127.0.0.1",
                body=json.dumps(payload), payload=json.dumps(payload), ticker=ticker,
                action=side, status="processed", http_status=200,
            )  # fmt: skip
            order_id = journal.insert_order(
                client_order_id=f"bench-{n}", signal_id=signal_id, subscription=sub,
                account="paper", ticker=ticker, side=side, quantity=Decimal(quantity),
                order_type="market", time_in_force="day", role="entry", status="filled",
                created_at=at + timedelta(milliseconds=3), updated_at=at,
            )  # fmt: skip
            journal.record_fill(
                fill_id=f"paper:bench-{n}", order_id=order_id, account="paper", ticker=ticker,
                side=side, quantity=Decimal(quantity), price=price,
                filled_at=at + timedelta(milliseconds=9),
            )  # fmt: skip
    journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        config = write_config(directory)
        started = time.perf_counter()
        build(directory / "journal.db", args.fills)
        print(f"built a journal of {args.fills:,} fills in {time.perf_counter() - started:.1f} s")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPIPE_")}
        for run in range(args.runs):
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "tradepipe", "--config", str(config), "report", "--json"],
                capture_output=True, text=True, env=env, check=True,
            )  # fmt: skip
            took = time.perf_counter() - started
            report = json.loads(result.stdout)
            total = report["total"]
            print(
                f"run {run + 1}: tradepipe report --json {took:.2f} s"
                f" ({total['trades']:,} round trips, {len(report['executions']):,} fills,"
                f" {len(result.stdout) / 1e6:.1f} MB of JSON)"
            )


if __name__ == "__main__":
    main()
