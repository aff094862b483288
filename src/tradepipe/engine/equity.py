"""Equity snapshots (SPEC §13): each account's equity journaled at start, after fills and every
60 s, by one background task of the engine — never in a lane, never before an order is sent.

A fill only marks its account due (`due`); the task takes the snapshot when the loop next runs
it, so a burst of fills costs one `broker.account()` (a REST call at remote brokers) per round,
not one per fill. A failed snapshot is logged and the next one tries again: never fatal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from tradepipe.engine.current import Current
from tradepipe.journal import Journal
from tradepipe.journal.equity import AFTER_FILL, PERIODIC

log = logging.getLogger(__name__)


class EquityKeeper:
    def __init__(
        self,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        *,
        interval: float = 60.0,
        is_down: Callable[[str], bool] = lambda account: False,
        recorded: Callable[[str, Decimal, datetime], None] = lambda account, equity, at: None,
    ) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self.interval = interval
        self.is_down = is_down  # a broker being reconnected: no call until it is back
        # Told each snapshot once journaled: the risk limits' figures, and their trips.
        self.recorded = recorded
        self.pending: dict[str, str] = {}  # account → why its next snapshot is due
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None

    def due(self, account: str, reason: str = AFTER_FILL) -> None:
        """Snapshot `account` soon (called where fills are journaled: returns at once)."""
        self.pending.setdefault(account, reason)
        self._wake.set()

    async def run(self) -> None:
        """Take due snapshots as they come, and every account's each `interval` seconds."""
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.interval, self._round)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self.pending:
                    account = next(iter(self.pending))
                    await self.snapshot(account, self.pending.pop(account))
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _round(self) -> None:
        for account in self.current.brokers:
            self.due(account, PERIODIC)
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._round)

    async def snapshot(self, account: str, reason: str) -> int | None:
        """Journal the account's equity now; the row's id, None when it could not be read."""
        broker = self.current.brokers.get(account)
        if broker is None or self.is_down(account):
            return None
        try:
            summary = await broker.account()
            at = self.clock()
            row = self.journal.record_equity(account, summary.equity, summary.cash, at, reason)
        except Exception as e:  # a snapshot is a figure for later, never worth a failure now
            log.warning("equity snapshot of %s (%s) failed: %s", account, reason, e)
            return None
        try:
            self.recorded(account, summary.equity, at)
        except Exception:  # a trip that failed is logged; the next snapshot checks again
            log.exception("risk limits after the equity snapshot of %s", account)
        return row
