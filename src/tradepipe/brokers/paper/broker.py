"""The paper broker: a real adapter whose books (cash, positions, orders, marks) are journaled.

It behaves like a broker on the other side of a wire: it knows orders only by the client order id
it was sent, refuses to create the same id twice, fills market orders at the mark (the last price a
signal carried or `tradepipe paper quote` set), and keeps limit and stop orders resting until a
later mark crosses them. A trailing stop remembers the best mark since it went live and
triggers when a mark falls back by its trail (amount or percent) from there.

Margins: longs are bought with cash (no margin), shorts under Reg T: a sale that opens or grows
a short needs 50 % of its value (initial margin) on top of its proceeds, which stay as
collateral. Buying power is cash less 150 % of the shorts' market value; closing a position
needs none and frees some (see `buying_power_needed`).

What one unit is worth (SPEC §12) it reads from the ticker: a future (`ESZ2026`, `ESZ26`) of a
root it knows or the account's `instruments` table configures is worth its point value per
point, an OCC option 100, anything else 1. A future is paid for in full, like a stock: buying
1 ES at 5000 needs 250,000 of cash (no margin on paper), and its fills move cash by price ×
quantity × multiplier, so equity and P&L are in dollars; a short future takes Reg T's 50 % of
its whole value, like a short stock.

Its rooms: `books` (pure: margins, fill prices, trailing), `ledger` (reading the journaled
books), `matching` (the journaled matching of orders and marks), `instruments` (what a unit is
worth), `faults` (misbehaving on purpose, for tests and drills); this module is the `Broker`
protocol over them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

from tradepipe.brokers.base import AccountSummary, Capabilities, InstrumentRules, OrderListener
from tradepipe.brokers.paper.books import (
    SHORT_MARGIN,
    WORKING,
    buying_power_needed,
    mark_problem,
    trailing_stop_price,
)
from tradepipe.brokers.paper.chains import chain_of, generated_chain
from tradepipe.brokers.paper.faults import Fault, Faults
from tradepipe.brokers.paper.instruments import PaperInstruments
from tradepipe.brokers.paper.ledger import Ledger
from tradepipe.brokers.paper.matching import Matching, Taken
from tradepipe.core.continuous import (
    ROLL_DAYS_BEFORE_EXPIRY,
    ListedFuture,
    Mapped,
    exchange_date,
    front_contract,
    parse_continuous,
    quarterly_contracts,
)
from tradepipe.core.instruments import ContractSpec, contract_spec
from tradepipe.core.model import (
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
)
from tradepipe.core.options import OptionContract, OptionRight
from tradepipe.errors import OrderRejected
from tradepipe.journal import Journal
from tradepipe.journal.paper_books import Written

__all__ = [
    "CAPABILITIES",
    "SHORT_MARGIN",
    "WORKING",
    "Fault",
    "PaperBroker",
    "buying_power_needed",
    "mark_problem",
    "trailing_stop_price",
]


CAPABILITIES = Capabilities(
    order_types=frozenset(
        {
            OrderType.MARKET,
            OrderType.LIMIT,
            OrderType.STOP,
            OrderType.STOP_LIMIT,
            OrderType.TRAILING_STOP,
        }
    ),
    time_in_force=frozenset(TimeInForce),
    brackets=True,
    fractional=True,
    short_selling=True,
    quotes=True,
    marks_from_signals=True,
    lot_size=Decimal("0.000001"),
    options=True,
    continuous_futures=True,
)


class PaperBroker:
    def __init__(
        self,
        name: str,
        journal: Journal,
        *,
        cash: Decimal,
        clock: Callable[[], datetime],
        native_brackets: bool = True,
        instruments: Mapping[str, ContractSpec] | None = None,
        roll_days: int = ROLL_DAYS_BEFORE_EXPIRY,
    ) -> None:
        self.name = name
        # Without native brackets it plays a broker that has none: the engine emulates them.
        self.capabilities = replace(CAPABILITIES, brackets=native_brackets)
        self._journal = journal
        self._initial_cash = cash
        self._clock = clock
        self.instruments = PaperInstruments(name, instruments or {})
        self.ledger = Ledger(name, journal, cash, self.instruments)
        self.matching = Matching(self.ledger)
        self.faults = Faults(name)
        self.roll_days = roll_days

    def canonical_ticker(self, ticker: str) -> str:
        return self.ledger.canonical(ticker)

    def _canonical(self, request: OrderRequest) -> OrderRequest:
        ticker = self.canonical_ticker(request.ticker)
        return request if ticker == request.ticker else replace(request, ticker=ticker)

    def inject(self, fault: Fault, message: str = "injected fault") -> None:
        """Misbehave as a remote broker can (for tests and drills): REJECT, TIMEOUT and DROP
        apply to the next new order, LOSE_FILLS to the next price move, DOWN to every call
        until `heal()`."""
        self.faults.inject(fault, message)

    def heal(self) -> None:
        self.faults.heal()

    async def connect(self) -> None:
        self.faults.link()
        # The books kept in memory are read from the file again (journal/paper_books.py).
        self._journal.forget_paper_books(self.name)
        self.ledger.cash()

    async def close(self) -> None:
        return None

    def on_disconnect(self, listener: Callable[[str], None]) -> None:
        """Nothing to watch: each call connects (a stream reconnects by itself and re-syncs)."""

    def listen(self, listener: OrderListener) -> None:
        """Paper fills happen inside calls the engine makes and answers: nothing to stream."""

    async def instrument(self, ticker: str) -> InstrumentRules:
        rules = self.instruments.rules(ticker)
        if isinstance(rules, str):
            raise OrderRejected(rules)
        return rules

    # -- orders --------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> OrderState:
        (state,) = await self.submit_bracket(request, ())
        return state

    async def submit_bracket(
        self, entry: OrderRequest, children: Sequence[OrderRequest]
    ) -> list[OrderState]:
        self.faults.link()
        entry, children = self._canonical(entry), [self._canonical(c) for c in children]
        # A retried order (same client order id) is answered with what it came to. Whether it
        # is new is learnt from its insert, which writes nothing for a taken id (no read
        # first); only then may it meet a fault (a REJECT or DROP takes its rows back).
        try:
            for request in (entry, *children):
                self._check(request)
            mark = self.ledger.mark(entry.ticker)  # no await from here to the fill: one read
            self.matching.refuse_unaffordable(entry, mark)
            now = self._clock()
            with self._journal.watch_paper_rows() as written, self._journal.transaction():
                # The legs are held until the entry fills (OTOCO); an entry that fills at once
                # is written once, already filled.
                self.matching.open(
                    entry, mark, now, children=children, affordable=True, new_only=True
                )
                fault = self.faults.next_order()
        except Taken:
            return await self._known(entry, children)
        except OrderRejected:  # a verdict on a new order only: a taken one is answered
            if self._journal.paper_order(self.name, entry.client_order_id) is not None:
                return await self._known(entry, children)
            raise
        self.faults.lose_answer(fault)
        # New orders: their rows and all their fills were written just now.
        return [self._answer(written, r.client_order_id) for r in (entry, *children)]

    async def _known(
        self, entry: OrderRequest, children: Sequence[OrderRequest]
    ) -> list[OrderState]:
        """A retried order's state, and its legs' (as they are now)."""
        states = [await self.get_order(entry.client_order_id)]
        states += [await self.get_order(child.client_order_id) for child in children]
        return [state for state in states if state is not None]

    def _answer(self, written: Written, client_order_id: str) -> OrderState:
        """A new order's state from the rows written for it in this call (no read back)."""
        key = (self.name, client_order_id)
        return self.ledger.state_of(written.orders[key], written.fills.get(key, []))

    async def replace(self, client_order_id: str, request: OrderRequest) -> OrderState:
        self.faults.link()
        request = self._canonical(request)
        fault = None
        if self._journal.paper_order(self.name, request.client_order_id) is None:
            fault = self.faults.next_order()
            old = self._journal.paper_order(self.name, client_order_id)
            if old is None:
                raise OrderRejected(f"paper broker: no order {client_order_id} to replace")
            if old["status"] not in WORKING:
                raise OrderRejected(
                    f"paper broker: order {client_order_id} is {old['status']}: nothing to replace"
                )
            self._check(request)
            if old["status"] != "held":
                self.matching.refuse_unaffordable(request, self.ledger.mark(request.ticker))
            now = self._clock()
            with self._journal.watch_paper_rows() as written, self._journal.transaction():
                self.matching.finish(
                    client_order_id,
                    OrderStatus.CANCELED,
                    f"replaced by {request.client_order_id}",
                    now,
                )
                mark = None if old["status"] == "held" else self.ledger.mark(request.ticker)
                self.matching.open(request, mark, now, status=old["status"], parent=old["parent"])
            self.faults.lose_answer(fault)
            return self._answer(written, request.client_order_id)
        self.faults.lose_answer(fault)
        state = await self.get_order(request.client_order_id)
        assert state is not None
        return state

    def _check(self, request: OrderRequest) -> None:
        if request.order_type not in self.capabilities.order_types:
            raise OrderRejected(f"paper broker: order type {request.order_type} is not supported")
        if request.quantity <= 0:
            raise OrderRejected(f"paper broker: quantity must be positive (got {request.quantity})")
        if isinstance(rules := self.instruments.rules(request.ticker), str):
            raise OrderRejected(rules)

    async def get_order(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> OrderState | None:
        self.faults.link()
        row = self._journal.paper_order(self.name, client_order_id)
        return self.ledger.state(row) if row else None

    async def cancel(self, client_order_id: str, *, ticker: str | None = None) -> OrderState | None:
        self.faults.link()
        row = self._journal.paper_order(self.name, client_order_id)
        if row is None:
            return None
        if row["status"] in WORKING:  # a held bracket leg too
            with self._journal.transaction():
                self.matching.finish(
                    client_order_id, OrderStatus.CANCELED, "canceled", self._clock()
                )
            row = self._journal.paper_order(self.name, client_order_id)
            assert row is not None
        return self.ledger.state(row)

    async def open_orders(self, ticker: str | None = None) -> list[OrderState]:
        self.faults.link()
        if ticker is None:
            return [self.ledger.state(r) for r in self._journal.paper_open_orders(self.name)]
        return [self.ledger.state(r) for r in self.ledger.live(ticker)]

    async def observe_price(self, ticker: str, price: Decimal) -> list[OrderState]:
        """Move the mark and fill every resting order the new price crosses. A continuous
        future's price (`ES1!`'s signalPrice) is the mark of the contract it maps to."""
        self.faults.link()
        ticker = self.dated(ticker)
        problem = self.mark_problem(ticker, price)
        if problem:
            raise OrderRejected(f"paper broker: mark {price} for {ticker} {problem}")
        price = self.on_tick(ticker, price)
        now = self._clock()
        spellings = self.ledger.spellings(ticker)
        before = self.ledger.ticker_orders(spellings)  # no await from here to the writes
        if before:
            with self._journal.transaction():
                self._journal.set_paper_mark(self.name, spellings[0], price, now)
                self.matching.match(ticker, price, now)
                after = self.ledger.ticker_orders(spellings)
        else:
            # No working order of the ticker (the usual case): nothing to fill, nothing changed;
            # the mark is one statement, atomic by itself.
            self._journal.set_paper_mark(self.name, spellings[0], price, now)
            after = {}
        if self.faults.lose_fills():
            return []  # the fills happened; the events about them are lost
        changed = [cid for cid, status in before.items() if after.get(cid) != status]
        states = [await self.get_order(client_order_id) for client_order_id in changed]
        return [state for state in states if state is not None]

    # -- options and futures (SPEC §15) --------------------------------------------------------

    async def option_chain(self, underlying: str) -> list[OptionContract]:
        """The chain `paper chain` gave for the underlying, else one generated around its
        mark (chains.py)."""
        self.faults.link()
        underlying = self.canonical_ticker(underlying)
        today = exchange_date(self._clock())
        given = self._journal.paper_chain(self.name, underlying)
        if given:
            rows = [(date.fromisoformat(e), OptionRight(r), k) for e, r, k in given]
            return chain_of(underlying, rows)
        mark = self.ledger.mark(underlying)
        if mark is None:
            raise OrderRejected(
                f"paper broker: no chain was given for {underlying} (tradepipe paper chain) and"
                f" it has no mark to generate one around (tradepipe paper quote)"
            )
        return generated_chain(underlying, mark, today)

    def give_chain(
        self, underlying: str, contracts: list[tuple[date, OptionRight, Decimal]]
    ) -> str:
        """Journal the chain the operator gives for an underlying; answers its canonical name."""
        underlying = self.canonical_ticker(underlying)
        rows = [(e.isoformat(), str(r), k) for e, r, k in contracts]
        self._journal.set_paper_chain(self.name, underlying, rows, self._clock())
        return underlying

    async def futures_contracts(self, root: str) -> list[ListedFuture]:
        """The quarterly contracts of a root the paper broker knows."""
        if contract_spec(root, self.instruments.instruments) is None:
            raise OrderRejected(
                f"paper broker: {root} is not a futures root it knows; give multiplier and"
                f" tick_size in accounts.{self.name}.instruments.{root}"
            )
        return quarterly_contracts(root, exchange_date(self._clock()))

    def dated(self, ticker: str) -> str:
        """The dated contract a continuous futures ticker maps to today (itself otherwise)."""
        continuous = parse_continuous(ticker)
        if (
            continuous is None
            or contract_spec(continuous.root, self.instruments.instruments) is None
        ):
            return ticker
        today = exchange_date(self._clock())
        listed = quarterly_contracts(continuous.root, today)
        mapped = front_contract(ticker, continuous.nth, listed, today, self.roll_days)
        return mapped.contract.symbol if isinstance(mapped, Mapped) else ticker

    # -- account -------------------------------------------------------------------------------

    async def position(self, ticker: str) -> Position:
        self.faults.link()
        quantity, average = self.ledger.held(ticker)
        return Position(self.canonical_ticker(ticker), quantity, average)

    async def positions(self) -> list[Position]:
        """Every position, read from the file: reconciliation starts here, so what was changed
        there by hand is seen (and kept in memory from then on)."""
        self.faults.link()
        self._journal.forget_paper_books(self.name)
        return self.ledger.positions()

    def mark_problem(self, ticker: str, price: Decimal) -> str | None:
        """Why `price` cannot be the mark of `ticker` (None if it can)."""
        return self.instruments.mark_problem(ticker, price)

    def on_tick(self, ticker: str, price: Decimal) -> Decimal:
        """`price` on the instrument's tick, to the nearest one."""
        return self.instruments.on_tick(ticker, price)

    async def quote(self, ticker: str) -> Decimal | None:
        self.faults.link()
        return self.ledger.mark(ticker)

    async def account(self) -> AccountSummary:
        self.faults.link()
        cash = self.ledger.cash()
        equity = cash + sum((self.ledger.value(p) for p in self.ledger.positions()), Decimal(0))
        buying_power = max(self.ledger.buying_power(), Decimal(0))
        return AccountSummary(equity=equity, cash=cash, buying_power=buying_power)
