"""The daily summary (SPEC §14 kind `daily`): each account's trading day — round trips closed,
realized P&L, fills, equity, the states in force — written to the outbox at the account's next
day start (`[accounts.NAME.risk] day_starts_at` in its `timezone`), from the notifier's rounds. A
day that ended while the daemon was stopped is summarized once, at the next start; an account
that never had one starts with its next day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from tradepipe.core.notify import Notify, NotifyKind, daily_text
from tradepipe.core.report import GroupBy, make_report
from tradepipe.core.trading_states import day_start, next_day_start
from tradepipe.engine.current import Current
from tradepipe.journal import Journal


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

    def check(self, now: datetime) -> datetime | None:
        """Write the summaries due; answers when the next one is."""
        if not self.wanted():
            return None
        soonest: datetime | None = None
        for name, account in self.current.config.accounts.items():
            risk = account.risk
            due = self._due.setdefault(  # an account a reload added
                name, next_day_start(now, risk.day_starts_at, risk.timezone)
            )
            if now >= due:
                until = day_start(now, risk.day_starts_at, risk.timezone)
                since = day_start(until - timedelta(seconds=1), risk.day_starts_at, risk.timezone)
                self.notify(NotifyKind.DAILY, f"account {name}", self.text(name, since, until))
                due = self._due[name] = next_day_start(now, risk.day_starts_at, risk.timezone)
            soonest = due if soonest is None else min(soonest, due)
        return soonest

    def text(self, account: str, since: datetime, until: datetime) -> str:
        """The summary of one account's day [since, until)."""
        from tradepipe.engine.performance import build_report

        built, extras = build_report(
            self.current.config, self.journal, GroupBy.ACCOUNT, since, until
        )
        total = next((g for g in built.groups if g.group == account), None)
        if total is None:
            total = make_report((), {}).total
        equity = next(
            (
                (a["equity_first"], a["equity_last"])
                for a in extras["accounts"]
                if a["account"] == account
            ),
            None,
        )
        return daily_text(
            account, since, until, total, extras["fills"][account], equity, self.in_force()
        )
