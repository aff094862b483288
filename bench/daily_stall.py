"""How long the daily summary holds the event loop, on a journal of N fills.

Builds the journal as bench/report.py does, then on one event loop runs a heartbeat (a task
sleeping 1 ms, recording the longest gap between its turns) while the summary of one day is
written: `before`, the report built on the loop as engine/daily.py used to (build_report on the
daemon's connection, then the outbox row); `after`, the real `DailySummary.check` (the report
built in a worker thread on its own connection). Prints the longest loop stall and the wall time
of each.

    python -m bench.daily_stall --fills 10000 50000 --runs 3   (from the checkout root)
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.report import build

DAILY = '\n[[notify]]\nurl = "json://127.0.0.1:9/x"\nevents = ["daily"]\n'
DAY = datetime(2026, 11, 4, tzinfo=UTC)  # the day summarized is 2026-11-03


def write_config(directory: Path) -> Path:
    path = directory / "tradepipe.toml"
    path.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 1\n\n[journal]\npath = "journal.db"\n\n'
        '[accounts.paper]\nbroker = "paper"\ncash = 100000000\n\n'
        '[strategies.trend]\ntoken = "bench_QQQQw8e7r6t5y4u3i2o1p0a9s8d7"\n' + DAILY
    )
    return path


async def stalled(work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """The longest gap between the heartbeat's turns while `work` runs, and its wall time."""
    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beating = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.01)
    gaps.clear()
    started = time.perf_counter()
    await work()
    took = time.perf_counter() - started
    stop.set()
    await beating
    return max(gaps), took


def one(config_path: Path, after: bool) -> tuple[float, float]:
    from tradepipe.config import load_config
    from tradepipe.core.notify import NotifyKind, daily_text
    from tradepipe.core.report import GroupBy, make_report
    from tradepipe.engine.current import Current
    from tradepipe.engine.notifier import Notifier
    from tradepipe.engine.performance import build_report
    from tradepipe.journal import Journal

    config = load_config(config_path)
    journal = Journal.open(Path(config.journal.path))
    now = DAY + timedelta(seconds=30)
    notifier = Notifier(journal, Current(config, {}), lambda: now)

    async def new() -> None:
        await notifier.daily.check(now)

    async def old() -> None:  # engine/daily.py's text() before: on the loop
        since = DAY - timedelta(days=1)
        built, extras = build_report(config, journal, GroupBy.ACCOUNT, since, DAY)
        total = next((g for g in built.groups if g.group == "paper"), make_report((), {}).total)
        text = daily_text("paper", since, DAY, total, extras["fills"]["paper"], None)
        notifier.notify(NotifyKind.DAILY, "account paper", text)

    async def main() -> tuple[float, float]:
        journal.group_commits()  # as the daemon runs it
        await notifier.daily.check(DAY - timedelta(hours=1))  # the next is due at DAY
        return await stalled(new if after else old)

    try:
        return asyncio.run(main())
    finally:
        journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for fills in args.fills:
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp))
            build(Path(tmp) / "journal.db", fills)
            for label, after in (("before (on the loop)", False), ("after (worker thread)", True)):
                for run in range(args.runs):
                    stall, took = one(config, after)
                    print(
                        f"{fills:>6,} fills, {label}, run {run + 1}: longest loop stall"
                        f" {stall * 1000:7.1f} ms, summary written in {took:.2f} s"
                    )


if __name__ == "__main__":
    main()
