"""Reconciliation (SPEC §8, §11): the journal against the broker. Orders whose answer was lost
are settled by asking the broker about their client order id; each account + ticker is
compared with the broker, and a position that differs blocks new entries there."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timedelta
from decimal import Decimal

from tradepipe.core.model import OrderStatus
from tradepipe.core.notify import Notify, NotifyKind, no_notify
from tradepipe.core.reconcile import (
    Difference,
    foreign_orders,
    orders_to_look_up,
    position_drift,
    still_open,
)
from tradepipe.engine.current import Current
from tradepipe.engine.health import HealthMonitor
from tradepipe.engine.lanes import Chore
from tradepipe.engine.recorder import Recorder
from tradepipe.journal import Journal

log = logging.getLogger(__name__)

# How long after a lost answer "the broker does not know this id" is believed.
UNKNOWN_GRACE = timedelta(seconds=60)


class Reconciler:
    """Owns nothing but what it decides into `blocked` (account + ticker → the position
    difference that blocks new entries there); the journal keeps the rest."""

    def __init__(
        self,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        recorder: Recorder,
        monitor: HealthMonitor,
        *,
        blocked: dict[tuple[str, str], Difference],
        queue_chore: Callable[[Chore], None],
        notify: Notify = no_notify,
    ) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self.recorder = recorder
        self.monitor = monitor
        self.blocked = blocked
        self.queue_chore = queue_chore
        self.notify = notify
        # account + ticker whose position differs from the broker's: told once when it starts
        self.drifting: set[tuple[str, str]] = set()

    # -- settling by lookup (SPEC §8) ---------------------------------------------------------

    async def look_up_interrupted(self, account: str) -> None:
        """Before reconciling at start: what the broker did with the orders a stop caught
        between journaling and the answer. Their fills must be in the journal first, or the
        position they moved looks like drift. Not found: their delivery, resumed, sends them;
        an operator's order has no delivery, so its fate becomes unknown, settled by lookup."""
        broker = self.current.brokers[account]
        for order in self.journal.submitting_orders(account):
            found = await broker.get_order(order["client_order_id"], ticker=order["ticker"])
            if found is not None:
                self.recorder.record_state(account, order["ticker"], found)
            elif order["delivery_id"] is None:
                why = "a stop came between journaling and sending (flatten)"
                self.recorder.journal_status(order, OrderStatus.UNKNOWN, why)

    async def settle_unknown(self, account: str, ticker: str | None = None) -> None:
        """An order whose answer was lost (timeout, dropped connection, crash) is never sent
        again blindly: the broker is asked about its client order id. Found: its state is
        journaled. Not found: it never reached the broker, and is journaled as not sent."""
        broker = self.current.brokers[account]
        for order in self.journal.unknown_orders(account, ticker):
            found = await broker.get_order(order["client_order_id"], ticker=order["ticker"])
            if found is not None:
                log.info("order %s settled by lookup: %s", order["client_order_id"], found.status)
                self.recorder.record_state(account, order["ticker"], found)
            elif self.clock() - datetime.fromisoformat(order["updated_at"]) < UNKNOWN_GRACE:
                continue  # a broker may list an order a moment after it took it: ask again later
            else:
                why = "never reached the broker (looked up by its id after the answer was lost)"
                log.warning("order %s %s", order["client_order_id"], why)
                self.recorder.journal_status(order, OrderStatus.CANCELED, why)

    # -- reconciliation (SPEC §11) ------------------------------------------------------------

    async def reconcile_account(self, account: str) -> list[Difference]:
        """Every ticker the journal or the broker has anything on, one after the other."""
        differences: list[Difference] = []
        for ticker in await self.tickers(account):
            differences += await self.reconcile(account, ticker)
        return differences

    async def queue_account(self, account: str) -> None:
        """Reconcile each of the account's tickers in its own lane, after the work queued there,
        so none of our own deliveries is caught half-way. Raises BrokerError if the broker
        cannot list what it holds."""
        for ticker in await self.tickers(account):
            self.queue_chore(Chore("reconcile", account, ticker))

    async def tickers(self, account: str) -> list[str]:
        """Every instrument the journal or the broker has anything on, each once, canonical."""
        broker = self.current.brokers[account]
        tickers = {p["ticker"] for p in self.journal.positions(account=account)}
        tickers |= {o["ticker"] for o in self.journal.working_orders(account)}
        tickers |= {p.ticker for p in await broker.positions() if p.quantity}
        tickers |= {o.ticker for o in await broker.open_orders() if o.ticker}
        self.monitor.checked(account)
        return sorted({self.current.canonical(account, ticker) for ticker in tickers})

    async def reconcile(self, account: str, ticker: str) -> list[Difference]:
        """Compare one account + ticker with the broker; journal and report every difference.
        Orders the journal was behind on are brought up to date from the broker's answer; a
        position that still differs blocks new entries on the ticker (if configured).

        Canonical against canonical: journal rows written under another spelling of the
        instrument (before tickers were canonical) are read as the instrument's, not rewritten.
        """
        broker = self.current.brokers[account]
        canonical = self.current.canonical
        ticker = canonical(account, ticker)
        now = self.clock()
        differences: list[Difference] = []
        broker_open = await broker.open_orders(ticker)
        working = [
            o
            for o in self.journal.working_orders(account)
            if canonical(account, o["ticker"]) == ticker
        ]
        was = {o["client_order_id"]: o for o in working}
        for cid in orders_to_look_up(working, broker_open):
            found = await broker.get_order(cid, ticker=ticker)
            if found is None:
                # The broker does not know it: settled as unknown, by lookup, after a grace.
                self.recorder.journal_status(
                    was[cid],
                    OrderStatus.UNKNOWN,
                    "the broker no longer lists this order (reconciliation)",
                )
                seen = "not found"
            else:
                self.recorder.record_state(account, ticker, found)
                seen = str(found.status)
            differences.append(Difference("order", account, ticker, cid, was[cid]["status"], seen))
        journaled = {
            o.client_order_id: row
            for o in broker_open
            if (row := self.journal.order_by_client_id(o.client_order_id)) is not None
        }
        differences += foreign_orders(account, ticker, broker_open, journaled)
        differences += still_open(account, ticker, broker_open, journaled)
        held = sum(
            (
                Decimal(p["quantity"])
                for p in self.journal.positions(account=account)
                if canonical(account, p["ticker"]) == ticker
            ),
            Decimal(0),
        )
        at_broker = (await broker.position(ticker)).quantity
        drift = position_drift(account, ticker, held, at_broker)
        differences += drift
        key = (account, ticker)
        with self.journal.transaction() if differences else nullcontext():
            # The differences and their notification together.
            for difference in differences:
                log.warning("reconciliation: %s", difference.describe())
                self.journal.record_reconciliation(
                    f"{account} {ticker}",
                    now,
                    kind=difference.kind,
                    about=difference.subject,
                    journal=difference.journal,
                    broker=difference.broker,
                )
            if drift and key not in self.drifting:
                blocks = self.current.config.reconciliation.block_entries_on_mismatch
                text = f"out of step: {drift[0].describe()}" + (
                    "; new entries blocked" if blocks else ""
                )
                self.notify(NotifyKind.BROKER, f"{account} {ticker}", text)
        if drift:
            self.drifting.add(key)
        else:
            self.drifting.discard(key)
        if drift and self.current.config.reconciliation.block_entries_on_mismatch:
            self.blocked[key] = drift[0]
        elif self.blocked.pop(key, None) is not None:
            log.info("reconciliation: %s %s agrees again; entries unblocked", account, ticker)
        health = self.monitor.broker_health.setdefault(account, {"differences": []})
        health.update(ok=True, error=None, checked_at=now.isoformat())
        others = [d for d in health["differences"] if d["ticker"] != ticker]
        health["differences"] = others + [
            {"ticker": ticker, "difference": d.describe(), "blocks_entries": d.blocks_entries}
            for d in differences
        ]
        return differences
