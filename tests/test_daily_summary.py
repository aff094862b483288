"""The daily summary's report is built off the event loop (engine/daily.py): on a journal of many
fills the loop keeps running while it is built, in a thread of its own on a connection of its
own, with the figures of `tradepipe report` for that day; a build that fails is logged, leaves
the loop alone and is tried again, the day not lost. Real SQLite, the bench's journal writes."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bench.report import build
from tests.helpers import FixedClock, tradepipe, write_config
from tradepipe.config import load_config
from tradepipe.engine.current import Current
from tradepipe.engine.daily import RETRY
from tradepipe.engine.notifier import Notifier
from tradepipe.journal import Journal

DAILY = '\n[[notify]]\nurl = "json://127.0.0.1:9/x"\nevents = ["daily"]\n'
# The bench's fills start 2026-11-02 14:30 UTC, one every 5 to 600 s: 2,000 span about a week.
DAY = datetime(2026, 11, 4, tzinfo=UTC)
MIDDAY = DAY - timedelta(hours=12)


class AtEmit(logging.Handler):
    """Calls `seen(record)` in the thread that logs it."""

    def __init__(self, seen) -> None:
        super().__init__(logging.INFO)
        self.seen = seen

    def emit(self, record: logging.LogRecord) -> None:
        self.seen(record)


def summaries(journal: Journal) -> list[str]:
    return [
        r["text"]
        for r in journal.conn.execute("SELECT text FROM notifications WHERE kind = 'daily'")
    ]


def setup(tmp_path: Path, fills: int) -> tuple[Path, Notifier, Journal, FixedClock]:
    config_path = write_config(tmp_path, extra=DAILY)
    config = load_config(config_path)
    build(Path(config.journal.path), fills)  # account "paper", 8 tickers, 4 subscriptions
    journal = Journal.open(Path(config.journal.path))
    clock = FixedClock(MIDDAY)
    return config_path, Notifier(journal, Current(config, {}), clock), journal, clock


def test_the_loop_keeps_running_while_the_summary_is_built_in_a_thread(tmp_path, caplog):
    config_path, notifier, journal, clock = setup(tmp_path, 2000)
    caplog.set_level(logging.INFO, logger="tradepipe.engine.daily")
    built: list[tuple[int, int]] = []  # (thread that built the report, heartbeats by then)
    ticks = 0

    def seen(record: logging.LogRecord) -> None:
        if "its report built" in record.getMessage():
            built.append((record.thread or 0, ticks))

    handler = AtEmit(seen)
    logging.getLogger("tradepipe.engine.daily").addHandler(handler)

    async def test() -> None:
        nonlocal ticks
        loop_thread = threading.get_ident()
        stop = asyncio.Event()

        async def heartbeat() -> None:  # one tick per turn of the loop
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        daily = notifier.daily
        assert await daily.check(clock()) == DAY  # not due before the day's end
        clock.now = DAY + timedelta(seconds=30)
        beating = asyncio.create_task(heartbeat())
        await asyncio.sleep(0)
        before = ticks
        # The notifier's round and a second caller at once: one summary, built once.
        answers = await asyncio.gather(daily.check(clock()), daily.check(clock()))
        stop.set()
        await beating
        assert answers == [DAY + timedelta(days=1)] * 2
        ((thread, ticks_then),) = built
        assert thread != loop_thread  # the report was built in a worker thread …
        assert ticks_then > before  # … while the loop went on turning

    try:
        asyncio.run(test())
    finally:
        logging.getLogger("tradepipe.engine.daily").removeHandler(handler)
    (text,) = summaries(journal)
    journal.close()
    # The figures `tradepipe report` gives for that day.
    report = json.loads(
        tradepipe(
            config_path,
            "report",
            "--by",
            "account",
            "--since",
            (DAY - timedelta(days=1)).isoformat(),
            "--until",
            DAY.isoformat(),
            "--json",
        ).stdout
    )
    total = report["total"]
    assert total["trades"] > 10
    first, fills, *_ = text.splitlines()
    assert first.startswith("paper, 2026-11-03 00:00 UTC to 2026-11-04 00:00 UTC:")
    assert f": {total['trades']} round trips closed ({total['wins']} won," in first
    realized = Decimal(str(total["realized"]))
    assert f"realized {'+' if realized > 0 else ''}{realized:,.2f} net of" in first
    assert fills == f"fills: {len(report['executions'])}"


def test_a_failed_build_is_logged_and_tried_again_and_the_day_is_not_lost(tmp_path, caplog):
    _, notifier, journal, clock = setup(tmp_path, 200)
    away = journal.path.with_name("moved.db")

    async def test() -> None:
        daily = notifier.daily
        await daily.check(clock())
        clock.now = DAY + timedelta(seconds=30)
        journal.path.rename(away)  # the worker's own connection cannot open the file
        try:
            retry_at = await daily.check(clock())
        finally:
            away.rename(journal.path)
        assert retry_at == clock.now + timedelta(seconds=RETRY)
        assert summaries(journal) == []
        assert await daily.check(clock()) == retry_at  # not before its time
        clock.now = retry_at
        assert await daily.check(clock()) == DAY + timedelta(days=1)
        assert await daily.check(clock()) == DAY + timedelta(days=1)  # once

    asyncio.run(test())
    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage() == "daily summary of account paper failed; trying again in 60 s"
    assert "no journal at" in str(failure.exc_info[1])
    (text,) = summaries(journal)
    assert text.startswith("paper, 2026-11-03 00:00 UTC to 2026-11-04 00:00 UTC:")
    journal.close()


def test_accounts_whose_days_end_together_share_one_build_of_the_report(tmp_path, caplog):
    """Each account's summary, from one read of the fills per day window (it reads them all)."""
    extra = DAILY + '\n[accounts.other]\nbroker = "paper"\ncash = 5000\n'
    config_path = write_config(tmp_path, extra=extra)
    config = load_config(config_path)
    build(Path(config.journal.path), 200)  # fills of account "paper" only
    journal = Journal.open(Path(config.journal.path))
    clock = FixedClock(MIDDAY)
    notifier = Notifier(journal, Current(config, {}), clock)
    caplog.set_level(logging.INFO, logger="tradepipe.engine.daily")

    async def test() -> None:
        await notifier.daily.check(clock())
        clock.now = DAY + timedelta(seconds=30)
        assert await notifier.daily.check(clock()) == DAY + timedelta(days=1)

    asyncio.run(test())
    builds = [r for r in caplog.records if "its report built" in r.getMessage()]
    assert len(builds) == 1
    texts = sorted(summaries(journal))
    assert [t.split(",")[0] for t in texts] == ["other", "paper"]
    assert "fills: 0" in texts[0].splitlines()
    journal.close()
