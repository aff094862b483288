"""The risk limits (SPEC §13) on the signal→submit path: the pre-trade check's second step
(`vet`: every entry against `core.limits.check_order`) and the account trips (`core.limits.trips`
after each equity snapshot and each order sent).

The figures live in memory, updated where they change, so the check reads no SQLite per signal:
the latest equity (each snapshot, `equity_recorded`), the day's starting equity and the
high-water mark, the orders sent in the last minute per account (`order_sent`), the entries sent
today and the losses in a row per subscription, and each position's round trip (`fill_booked`).
`seed` reads their start from the journal once (the engine's start, `tradepipe risk` without a
daemon); a day's start is read again once, when the day turns.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.core.instruments import unit_multiplier
from tradepipe.core.limits import (
    AccountFigures,
    Limits,
    SubscriptionFigures,
)
from tradepipe.core.model import OrderRole
from tradepipe.core.plan import Plan, Reject
from tradepipe.core.tally import (
    MINUTE,
    Book,
    DayCount,
    FillBooked,
    Losses,
    after_close,
    book_fill,
    last_minute,
)
from tradepipe.core.trading_states import (
    Scope,
    day_start,
    next_day_start,
)
from tradepipe.engine.current import Current
from tradepipe.engine.risk_check import vet
from tradepipe.engine.trading_states import TradingStates
from tradepipe.engine.trips import Trips
from tradepipe.journal import Journal
from tradepipe.journal.trading_states import StateRow

if TYPE_CHECKING:
    from tradepipe.config import Config
    from tradepipe.config.accounts import RiskConfig
    from tradepipe.engine.pretrade import Context

log = logging.getLogger(__name__)

CONSECUTIVE_LOSSES = "max_consecutive_losses"


@dataclass(slots=True)
class AccountTally:
    """One account's figures as the engine keeps them."""

    equity: Decimal | None = None
    equity_at: datetime | None = None
    day_start: datetime | None = None
    next_day_start: datetime | None = None
    day_start_equity: Decimal | None = None
    high_water_mark: Decimal | None = None
    sent: deque[datetime] = field(default_factory=deque)  # orders sent, oldest first


@dataclass(slots=True)
class SubscriptionTally:
    trades: DayCount = field(default_factory=DayCount)
    losses: Losses = field(default_factory=Losses)
    blocked: bool = False  # tripped by its losses in a row: reduce-only until resumed


class RiskLimits:
    """The risk limits' figures and decisions for every account and subscription."""

    def __init__(
        self,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        states: TradingStates,
        *,
        flatten: Callable[[str, str], Awaitable[Any]] | None = None,
    ) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self.states = states
        self.trips = Trips(states, clock, flatten)
        self.accounts: dict[str, AccountTally] = {}
        self.subscriptions: dict[str, SubscriptionTally] = {}
        self.books: dict[tuple[str, str], Book] = {}  # account + ticker → its round trip
        self.prices: dict[tuple[str, str], Decimal] = {}  # the last price seen per ticker
        self.multipliers: dict[tuple[str, str], Decimal] = {}
        self._limits: dict[str, Limits] = {}
        self._limits_of: Config | None = None

    # -- the start: from the journal, once -----------------------------------------------------

    def seed(self, *, trip: bool = True) -> None:
        """Every account's and limited subscription's figures from the journal (SQL here only).
        `trip`: trip a subscription whose losses in a row reached its limit meanwhile (not
        when `tradepipe risk` only reads the journal)."""
        now = self.clock()
        config = self.current.config
        for account in config.accounts:
            self._seed_account(account, now)
        counted = set()
        for name, subscription in config.subscriptions.items():
            limits = self.limits_for(name).subscription
            if limits.max_trades_per_day is None and limits.max_consecutive_losses is None:
                continue
            tally = self.subscriptions.setdefault(name, SubscriptionTally())
            start = self.account_tally(subscription.account, now).day_start
            assert start is not None
            tally.trades = DayCount(start, self.journal.entries_since(name, start))
            if limits.max_consecutive_losses is not None:
                counted.add(subscription.account)
        # The round trips: their openers and the losses in a row each subscription has had
        # since it was last resumed.
        resumed = {
            name: self.journal.last_resumed_at(Scope.subscription(name))
            for name in self.subscriptions
        }
        for key in [k for k in self.books if k[0] in counted]:  # rebuilt by the replay
            del self.books[key]
        for fill in self.journal.booked_fills(counted):
            closed = self._book(fill)
            if closed is None or closed.subscription not in self.subscriptions:
                continue
            since = resumed.get(closed.subscription)
            if since is None or closed.at > since:
                tally = self.subscriptions[closed.subscription]
                tally.losses = after_close(tally.losses, closed)
        for name in self.subscriptions if trip else ():  # a crash came between a loss and
            self._trip_on_losses(name)  # its trip: trip it now

    def _seed_account(self, account: str, now: datetime) -> AccountTally:
        tally = self.accounts[account] = AccountTally()
        latest = self.journal.latest_equity(account)
        if latest is not None:
            tally.equity, tally.equity_at = latest.equity, latest.taken_at
        tally.high_water_mark = self.journal.high_water_mark(account)
        self._turn_day(account, tally, now)
        tally.sent.extend(self.journal.orders_sent_since(account, now - MINUTE))
        for row in self.journal.positions(account=account):
            quantity = Decimal(row["quantity"])
            average = Decimal(row["average_price"]) if row["average_price"] else None
            self.books[(account, row["ticker"])] = Book(quantity, average)
        for ticker, price in self.journal.last_fill_prices(account).items():
            self.prices[(account, ticker)] = price
        return tally

    def account_tally(self, account: str, now: datetime) -> AccountTally:
        tally = self.accounts.get(account)
        if tally is None:  # an account a reload added
            return self._seed_account(account, now)
        if tally.next_day_start is not None and now >= tally.next_day_start:
            self._turn_day(account, tally, now)
        return tally

    def _turn_day(self, account: str, tally: AccountTally, now: datetime) -> None:
        """A new trading day: its start and the equity then (read once a day)."""
        # An account a reload removed (a delivery still sending with the old config) keeps
        # the defaults' day.
        settings = self.current.config.accounts.get(account)
        starts_at, zone = ("00:00", "UTC") if settings is None else _day_of(settings.risk)
        tally.day_start = day_start(now, starts_at, zone)
        tally.next_day_start = next_day_start(now, starts_at, zone)
        if tally.equity_at is not None and tally.equity_at <= tally.day_start:
            tally.day_start_equity = tally.equity
        else:
            tally.day_start_equity = self.journal.day_start_equity(account, tally.day_start)

    def subscription_tally(self, subscription: str | None) -> SubscriptionTally | None:
        """The counts of a subscription with limits of its own (None: it has none). One a
        reload gave limits starts from the journal's entries today (its losses from now)."""
        if subscription is None:
            return None
        tally = self.subscriptions.get(subscription)
        if tally is not None:
            return tally
        config = self.current.config
        if subscription not in config.subscriptions:
            return None
        limits = self.limits_for(subscription).subscription
        if limits.max_trades_per_day is None and limits.max_consecutive_losses is None:
            return None
        account = config.subscriptions[subscription].account
        start = self.account_tally(account, self.clock()).day_start
        assert start is not None
        tally = self.subscriptions[subscription] = SubscriptionTally(
            trades=DayCount(start, self.journal.entries_since(subscription, start))
        )
        return tally

    def limits_for(self, subscription: str) -> Limits:
        config = self.current.config
        if config is not self._limits_of:  # a reload: resolve again
            self._limits, self._limits_of = {}, config
        limits = self._limits.get(subscription)
        if limits is None:
            limits = self._limits[subscription] = config.limits_for(subscription)
        return limits

    # -- where the figures change --------------------------------------------------------------

    def equity_recorded(self, account: str, equity: Decimal, at: datetime) -> None:
        """An equity snapshot was journaled: the figures move, and the account may trip."""
        tally = self.account_tally(account, at)
        tally.equity, tally.equity_at = equity, at
        if tally.high_water_mark is None or equity > tally.high_water_mark:
            tally.high_water_mark = equity
        if tally.day_start_equity is None:  # the account's first snapshot
            tally.day_start_equity = equity
        self.check_trips(account)

    def order_sent(self, account: str, role: OrderRole, subscription: str | None) -> None:
        """An order is about to reach the broker (each one counts towards the order rate; an
        entry is one of the subscription's trades today)."""
        now = self.clock()
        tally = self.account_tally(account, now)
        tally.sent.append(now)
        sub = self.subscription_tally(subscription) if role is OrderRole.ENTRY else None
        if sub is not None:
            assert tally.day_start is not None
            sub.trades = sub.trades.plus_one(tally.day_start)
        settings = self.current.config.accounts.get(account)
        if (
            settings is not None
            and last_minute(tally.sent, now) >= settings.risk.max_orders_per_minute
        ):
            self.check_trips(account)

    def fill_booked(self, fill: FillBooked) -> None:
        """A fill was journaled: its position's round trip moves; a closed loss counts."""
        closed = self._book(fill)
        tally = self.subscription_tally(closed.subscription) if closed is not None else None
        if closed is None or closed.subscription is None or tally is None:
            return
        tally.losses = after_close(tally.losses, closed)
        self._trip_on_losses(closed.subscription)

    def _book(self, fill: FillBooked) -> Any:
        key = (fill.account, fill.ticker)
        self.books[key], closed = book_fill(self.books.get(key, Book()), fill)
        self.prices[key] = fill.price
        return closed

    # -- the pre-trade check (engine/risk_check.py) -----------------------------------------

    async def vet(self, plan: Plan, context: Context) -> Plan | Reject:
        """The plan with each entry allowed, reduced (with its bracket legs) or dropped by the
        limits; a Reject naming the limit when nothing is left. Exits always pass."""
        return await vet(self, plan, context)

    def subscription_figures(self, subscription: str) -> SubscriptionFigures:
        tally = self.subscription_tally(subscription)
        if tally is None:
            return SubscriptionFigures()
        if tally.blocked and Scope.subscription(subscription) not in self.states.rows:
            # `tradepipe resume --subscription` ended the block: the row starts again.
            tally.blocked, tally.losses = False, Losses()
        account = self.current.config.subscriptions[subscription].account
        start = self.account_tally(account, self.clock()).day_start
        assert start is not None
        return SubscriptionFigures(
            trades_today=tally.trades.on(start),
            consecutive_losses=tally.losses.in_a_row,
            last_loss_at=tally.losses.last_loss_at,
        )

    def position_values(self, account: str) -> dict[str, Decimal]:
        """Each open position's value, price × quantity × multiplier (SPEC §12), at the last
        price tradepipe saw for it (its last fill, or a signal's reference price)."""
        values = {}
        for (name, ticker), book in self.books.items():
            if name != account or book.quantity == 0:
                continue
            price = self.prices.get((name, ticker)) or book.average or Decimal(0)
            values[ticker] = book.quantity * price * self.multiplier(name, ticker)
        return values

    def multiplier(self, account: str, ticker: str) -> Decimal:
        """What one unit is worth per point: as the broker last said, else SPEC §12's tables."""
        known = self.multipliers.get((account, ticker))
        if known is not None:
            return known
        specs = getattr(self.current.config.accounts.get(account), "contract_specs", None)
        return unit_multiplier(ticker, specs() if specs else None)

    # -- trips (engine/trips.py sets the states) -----------------------------------------------

    def check_trips(self, account: str) -> list[StateRow]:
        """Trip the account on each limit its figures reach now (per its `on_trip`); the rows
        that changed what is in force."""
        settings = self.current.config.accounts.get(account)
        if settings is None:
            return []
        now = self.clock()
        tally = self.account_tally(account, now)
        equity, start = tally.equity, tally.day_start_equity
        figures = None
        if equity is not None and start is not None:
            figures = AccountFigures(
                equity=equity,
                day_start_equity=start,
                high_water_mark=max(tally.high_water_mark or equity, equity),
                orders_last_minute=last_minute(tally.sent, now),
            )
        return self.trips.account(account, settings.risk, figures, last_minute(tally.sent, now))

    def _trip_on_losses(self, subscription: str) -> None:
        tally = self.subscriptions[subscription]
        limits = self.limits_for(subscription).subscription
        if self.trips.losses(subscription, tally.losses.in_a_row, limits):
            tally.blocked = True

    async def settle(self) -> None:
        """Wait for the flattens that trips started (tests)."""
        await self.trips.settle()


def _day_of(risk: RiskConfig) -> tuple[str, str]:
    return risk.day_starts_at, risk.timezone
