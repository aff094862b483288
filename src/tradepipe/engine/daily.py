"""The daily summary (SPEC §14 kind `daily`): each account's trading day — round trips closed,
realized P&L, fills, equity, the states in force — written to the outbox at the account's next
day start (`[accounts.NAME.risk] day_starts_at` in its `timezone`), from the notifier's rounds. A
day that ended while the daemon was stopped is summarized once, at the next start; an account
that never had one starts with its next day.

The report behind a summary reads every journaled fill (a round trip closed today may have
opened any day before): seconds on a big journal. It is built in a worker thread on its own read
connection to the journal file (WAL lets it read while the daemon writes), so the event loop
keeps acknowledging webhooks meanwhile; the outbox row is written back on the loop. A build that
fails is logged and tried again RETRY seconds later: the day is not lost."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from tradepipe.core.notify import Notify, NotifyKind, daily_text
from tradepipe.core.report import GroupBy, make_report
from tradepipe.core.trading_states import day_start, next_day_start
from tradepipe.engine.current import Current
from tradepipe.journal import Journal

if TYPE_CHECKING:
    from tradepipe.config import Config
    from tradepipe.core.report import Figures

log = logging.getLogger(__name__)

RETRY = 60.0  # seconds before a summary whose build failed is tried again

# One account's day as the report figures it: its total, its fills, its first and last equity.
DayFigures = tuple["Figures", int, tuple[Decimal, Decimal] | None]
# A day with no fill and no equity snapshot.
_QUIET_DAY: DayFigures = (make_report((), {}).total, 0, None)


class DailySummary:
    def __init__(
        self, journal: Journal, current: Current, clock: Callable[[], datetime], notify: Notify
    ) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self.notify = notify
        self._due: dict[str, datetime] = {}  # account → when its next summary is due
        # The trading states in force, as sentences (the engine sets its states').
        self.in_force: Callable[[], list[str]] = list
        self._checking = asyncio.Lock()  # one check at a time: each summary written once

    def wanted(self) -> bool:
        return any(NotifyKind.DAILY in t.kinds for t in self.current.config.notify)

    def load(self) -> None:
        """At start: each account's next summary; a day that ended while stopped (its summary
        not written) is summarized now."""
        if not self.wanted():
            return
        now = self.clock()
        for name, account in self.current.config.accounts.items():
            risk = account.risk
            today = day_start(now, risk.day_starts_at, risk.timezone)
            last = self.journal.last_told(NotifyKind.DAILY, f"account {name}")
            missed = last is not None and last < today
            self._due[name] = (
                now if missed else next_day_start(now, risk.day_starts_at, risk.timezone)
            )

    async def check(self, now: datetime) -> datetime | None:
        """Write the summaries due; answers when the next one is. The report is built in a
        worker thread (the loop keeps serving), once per day window: accounts whose days end
        together (the usual case) share one read of the fills. Calls overlapping one another
        write each summary once."""
        if not self.wanted():
            return None
        async with self._checking:
            soonest: datetime | None = None
            # Each window's figures, or why they could not be built (tried once per check).
            built: dict[tuple[datetime, datetime], dict[str, DayFigures] | Exception] = {}
            for name, account in list(self.current.config.accounts.items()):
                risk = account.risk
                due = self._due.setdefault(  # an account a reload added
                    name, next_day_start(now, risk.day_starts_at, risk.timezone)
                )
                if now >= due:
                    until = day_start(now, risk.day_starts_at, risk.timezone)
                    since = day_start(
                        until - timedelta(seconds=1), risk.day_starts_at, risk.timezone
                    )
                    if (since, until) not in built:
                        # The worker's connection sees only what is committed; the daemon's
                        # journal failing here stops it as any other write would.
                        await self.journal.durable()
                        try:
                            built[(since, until)] = await self._figures(since, until)
                        except asyncio.CancelledError:
                            raise  # not written: the next start summarizes the day (load)
                        except Exception as e:
                            built[(since, until)] = e
                    window = built[(since, until)]
                    if isinstance(window, Exception):
                        log.error(
                            "daily summary of account %s failed; trying again in %d s",
                            name,
                            RETRY,
                            exc_info=window,
                        )
                        due = self._due[name] = now + timedelta(seconds=RETRY)
                    else:
                        total, fills, equity = window.get(name, _QUIET_DAY)
                        text = daily_text(name, since, until, total, fills, equity, self.in_force())
                        self.notify(NotifyKind.DAILY, f"account {name}", text)
                        due = self._due[name] = next_day_start(
                            now, risk.day_starts_at, risk.timezone
                        )
                soonest = due if soonest is None else min(soonest, due)
            return soonest

    async def _figures(self, since: datetime, until: datetime) -> dict[str, DayFigures]:
        """Every account's day [since, until) as committed to the journal file, built in a
        worker thread."""
        return await asyncio.to_thread(
            day_figures, self.current.config, self.journal.path, since, until
        )


def day_figures(
    config: Config, path: Path, since: datetime, until: datetime
) -> dict[str, DayFigures]:
    """Each account's day [since, until) as `tradepipe report` figures it (an account without
    a fill or a snapshot in it is left out), read on a connection of its own (for a worker
    thread: a Journal belongs to one thread)."""
    from tradepipe.engine.performance import build_report

    started = time.perf_counter()
    journal = Journal.open(path, create=False)
    try:
        built, extras = build_report(config, journal, GroupBy.ACCOUNT, since, until)
    finally:
        journal.close()
    totals = {g.group: g for g in built.groups}
    equity = {a["account"]: (a["equity_first"], a["equity_last"]) for a in extras["accounts"]}
    log.info(
        "daily summaries of %s to %s: its report built in %.2f s",
        since,
        until,
        time.perf_counter() - started,
    )
    return {
        name: (totals.get(name, _QUIET_DAY[0]), extras["fills"][name], equity.get(name))
        for name in {*totals, *equity, *extras["fills"]}
    }
