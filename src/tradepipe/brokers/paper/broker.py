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

It names instruments the default way (`NASDAQ:AAPL` is "AAPL"). Books written before tickers
were canonical may hold an instrument under another spelling: those rows are read together
with the canonical one (positions add up), never rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from tradepipe.brokers.base import AccountSummary, Capabilities, InstrumentRules, OrderListener
from tradepipe.brokers.paper import books
from tradepipe.brokers.paper.books import (
    SHORT_MARGIN,
    WORKING,
    buying_power,
    buying_power_needed,
    mark_problem,
    order_state,
    trail_words,
    trailed,
    trailing_stop_price,
    unaffordable,
)
from tradepipe.core.instruments import (
    US_OPTION_MULTIPLIER,
    ContractSpec,
    InstrumentKind,
    contract_spec,
    is_us_option,
    parse_future,
)
from tradepipe.core.model import (
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
)
from tradepipe.core.prices import stock_tick
from tradepipe.core.tickers import default_canonical_ticker
from tradepipe.errors import BrokerUnavailable, OrderRejected
from tradepipe.journal import Journal, dumps

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


class Fault(StrEnum):
    REJECT = "reject"  # the next new order is refused with the given message
    TIMEOUT = "timeout"  # the next new order is accepted, then the answer is lost
    DROP = "drop"  # the connection drops before the next new order reaches the broker
    LOSE_FILLS = "lose_fills"  # the next price move fills orders but reports none of it
    DOWN = "down"  # every call fails as if the connection dropped, until heal()


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
    ) -> None:
        self.name = name
        # Without native brackets it plays a broker that has none: the engine emulates them.
        self.capabilities = replace(CAPABILITIES, brackets=native_brackets)
        self._journal = journal
        self._initial_cash = cash
        self._clock = clock
        self._instruments = dict(instruments or {})  # futures root → the account's override
        self._faults: list[tuple[Fault, str]] = []
        self._down: str | None = None
        # canonical ticker → the other spellings the books held it under when first read
        self._legacy: dict[str, tuple[str, ...]] | None = None

    def canonical_ticker(self, ticker: str) -> str:
        return default_canonical_ticker(ticker)

    def _spellings(self, ticker: str) -> tuple[str, ...]:
        """The canonical ticker, then any spelling that books written before tickers were
        canonical hold the same instrument under (new rows are always canonical)."""
        canonical = self.canonical_ticker(ticker)
        if self._legacy is None:
            held = {t for t, _, _ in self._journal.paper_positions(self.name)}
            held |= {
                json.loads(row["request"])["ticker"]
                for row in self._journal.paper_open_orders(self.name)
            }
            legacy: dict[str, tuple[str, ...]] = {}
            for spelling in sorted(held):
                if (name := self.canonical_ticker(spelling)) != spelling:
                    legacy[name] = (*legacy.get(name, ()), spelling)
            self._legacy = legacy
        return (canonical, *self._legacy.get(canonical, ()))

    def _held(self, ticker: str) -> tuple[Decimal, Decimal | None]:
        rows = (self._journal.paper_position(self.name, s) for s in self._spellings(ticker))
        return books.merged(rows)

    def _mark(self, ticker: str) -> Decimal | None:
        marks = (self._journal.paper_mark(self.name, s) for s in self._spellings(ticker))
        return next((mark for mark in marks if mark is not None), None)

    def _live(self, ticker: str) -> list[dict]:
        """The ticker's working orders (held bracket legs excluded), oldest first."""
        spellings = self._spellings(ticker)
        rows = [r for s in spellings for r in self._journal.paper_open_orders(self.name, s)]
        return rows if len(spellings) == 1 else sorted(rows, key=lambda r: r["created_at"])

    def _canonical(self, request: OrderRequest) -> OrderRequest:
        ticker = self.canonical_ticker(request.ticker)
        return request if ticker == request.ticker else replace(request, ticker=ticker)

    def inject(self, fault: Fault, message: str = "injected fault") -> None:
        """Misbehave as a remote broker can (for tests and drills): REJECT, TIMEOUT and DROP
        apply to the next new order, LOSE_FILLS to the next price move, DOWN to every call
        until `heal()`."""
        if fault is Fault.DOWN:
            self._down = message
        else:
            self._faults.append((fault, message))

    def heal(self) -> None:
        self._down = None

    def _link(self) -> None:
        if self._down is not None:
            raise BrokerUnavailable(f"paper broker {self.name}: {self._down}")

    async def connect(self) -> None:
        self._link()
        self._journal.paper_cash(self.name, self._initial_cash)

    async def close(self) -> None:
        return None

    def on_disconnect(self, listener: Callable[[str], None]) -> None:
        """Nothing to watch: each call connects (a stream reconnects by itself and re-syncs)."""

    def listen(self, listener: OrderListener) -> None:
        """Paper fills happen inside calls the engine makes and answers: nothing to stream."""

    async def instrument(self, ticker: str) -> InstrumentRules:
        rules = self._rules(ticker)
        if isinstance(rules, str):
            raise OrderRejected(rules)
        return rules

    def _rules(self, ticker: str) -> InstrumentRules | str:
        """What one unit of the ticker is worth, or why the paper broker cannot know."""
        future = parse_future(ticker)
        if future is not None:
            spec = contract_spec(future.root, self._instruments)
            if spec is None:
                return (
                    f"paper broker: {ticker} is a future of {future.root}, whose multiplier the"
                    " paper broker does not know: give multiplier and tick_size in the config"
                    f" table accounts.{self.name}.instruments.{future.root}"
                )
            return InstrumentRules(
                tick_size=spec.tick_size,
                lot_size=spec.lot_size,
                kind=InstrumentKind.FUTURE,
                multiplier=spec.multiplier,
            )
        if is_us_option(ticker):
            return InstrumentRules(kind=InstrumentKind.OPTION, multiplier=US_OPTION_MULTIPLIER)
        return InstrumentRules()

    def _multiplier(self, ticker: str) -> Decimal:
        """Cash, equity and P&L per point of one unit. A future whose value is unknown never
        gets an order in (`_check`); books written before multipliers count it as 1."""
        rules = self._rules(ticker)
        return Decimal(1) if isinstance(rules, str) else rules.multiplier

    # -- orders --------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> OrderState:
        (state,) = await self.submit_bracket(request, ())
        return state

    async def submit_bracket(
        self, entry: OrderRequest, children: Sequence[OrderRequest]
    ) -> list[OrderState]:
        self._link()
        entry, children = self._canonical(entry), [self._canonical(c) for c in children]
        existing = self._journal.paper_order(self.name, entry.client_order_id)
        fault = None
        if existing is None:
            fault = self._next_fault()
            for request in (entry, *children):
                self._check(request)
            mark = self._mark(entry.ticker)  # no await from here to the fill: one read
            self._refuse_unaffordable(entry, mark)
            now = self._clock()
            with self._journal.transaction():
                self._insert(entry, now, OrderStatus.ACCEPTED)
                for child in children:
                    # Held until the entry fills (OTOCO), as a broker holds a bracket's legs.
                    self._insert(child, now, "held", parent=entry.client_order_id)
                self._place(entry, mark, now, affordable=True)
        self._lose_answer(fault)
        states = [await self.get_order(entry.client_order_id)]
        states += [await self.get_order(child.client_order_id) for child in children]
        return [state for state in states if state is not None]

    async def replace(self, client_order_id: str, request: OrderRequest) -> OrderState:
        self._link()
        request = self._canonical(request)
        fault = None
        if self._journal.paper_order(self.name, request.client_order_id) is None:
            fault = self._next_fault()
            old = self._journal.paper_order(self.name, client_order_id)
            if old is None:
                raise OrderRejected(f"paper broker: no order {client_order_id} to replace")
            if old["status"] not in WORKING:
                raise OrderRejected(
                    f"paper broker: order {client_order_id} is {old['status']}: nothing to replace"
                )
            self._check(request)
            if old["status"] != "held":
                self._refuse_unaffordable(request, self._mark(request.ticker))
            now = self._clock()
            with self._journal.transaction():
                self._finish(
                    client_order_id,
                    OrderStatus.CANCELED,
                    f"replaced by {request.client_order_id}",
                    now,
                )
                self._insert(request, now, old["status"], parent=old["parent"])
                if old["status"] != "held":
                    self._place(request, self._mark(request.ticker), now)
        self._lose_answer(fault)
        state = await self.get_order(request.client_order_id)
        assert state is not None
        return state

    def _next_fault(self) -> tuple[Fault, str] | None:
        """The injected fault this new order meets: a REJECT refuses it here."""
        if not self._faults:
            return None
        fault, message = self._faults.pop(0)
        if fault is Fault.REJECT:
            raise OrderRejected(message)
        if fault is Fault.DROP:
            raise BrokerUnavailable(f"paper broker {self.name}: {message}")
        return fault, message

    def _lose_answer(self, fault: tuple[Fault, str] | None) -> None:
        if fault is not None and fault[0] is Fault.TIMEOUT:
            raise BrokerUnavailable(f"paper broker {self.name}: {fault[1]}")

    def _check(self, request: OrderRequest) -> None:
        if request.order_type not in self.capabilities.order_types:
            raise OrderRejected(f"paper broker: order type {request.order_type} is not supported")
        if request.quantity <= 0:
            raise OrderRejected(f"paper broker: quantity must be positive (got {request.quantity})")
        if isinstance(rules := self._rules(request.ticker), str):
            raise OrderRejected(rules)

    def _refuse_unaffordable(self, request: OrderRequest, mark: Decimal | None) -> None:
        """A new order that would execute at once but that buying power cannot carry is
        refused, as a broker refuses it (resting orders are checked when a mark fills them)."""
        if request.order_type is OrderType.TRAILING_STOP:
            return
        price = books.fill_price(request, mark)
        problem = None if price is None else self._affordability(request, price)
        if problem:
            raise OrderRejected(problem)

    def _insert(
        self, request: OrderRequest, now: datetime, status: str, parent: str | None = None
    ) -> None:
        self._journal.paper_insert_order(
            account=self.name,
            client_order_id=request.client_order_id,
            broker_order_id=f"P-{request.client_order_id}",
            request=_request_json(request),
            status=status,
            parent=parent,
            created_at=now,
            updated_at=now,
        )

    def _place(
        self,
        request: OrderRequest,
        mark: Decimal | None,
        now: datetime,
        *,
        affordable: bool = False,
    ) -> None:
        """A new order meets the mark: it fills, rests, or is refused. `affordable`: the
        caller refused it at this mark already if buying power could not carry it."""
        if request.order_type is OrderType.TRAILING_STOP:
            self._start_trailing(request, mark, now)
            return
        price = books.fill_price(request, mark)
        if request.order_type is OrderType.MARKET and price is None:
            self._finish(
                request.client_order_id,
                OrderStatus.REJECTED,
                f"no price for {request.ticker}: send signalPrice or run"
                f" `tradepipe paper quote {self.name} {request.ticker} PRICE`",
                now,
            )
        elif price is not None:
            problem = None if affordable else self._affordability(request, price)
            if problem:
                self._finish(request.client_order_id, OrderStatus.REJECTED, problem, now)
            else:
                self._fill(request, price, now)
        elif request.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            self._finish(
                request.client_order_id,
                OrderStatus.CANCELED,
                f"{request.time_in_force} order did not cross the mark",
                now,
            )

    async def get_order(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> OrderState | None:
        self._link()
        row = self._journal.paper_order(self.name, client_order_id)
        return self._state(row) if row else None

    async def cancel(self, client_order_id: str, *, ticker: str | None = None) -> OrderState | None:
        self._link()
        row = self._journal.paper_order(self.name, client_order_id)
        if row is None:
            return None
        if row["status"] in WORKING:  # a held bracket leg too
            with self._journal.transaction():
                self._finish(client_order_id, OrderStatus.CANCELED, "canceled", self._clock())
            row = self._journal.paper_order(self.name, client_order_id)
            assert row is not None
        return self._state(row)

    async def open_orders(self, ticker: str | None = None) -> list[OrderState]:
        self._link()
        if ticker is None:
            return [self._state(r) for r in self._journal.paper_open_orders(self.name)]
        return [self._state(r) for r in self._live(ticker)]

    async def observe_price(self, ticker: str, price: Decimal) -> list[OrderState]:
        """Move the mark and fill every resting order the new price crosses."""
        self._link()
        problem = self.mark_problem(ticker, price)
        if problem:
            raise OrderRejected(f"paper broker: mark {price} for {ticker} {problem}")
        price = self.on_tick(ticker, price)
        now = self._clock()
        spellings = self._spellings(ticker)
        with self._journal.transaction():
            before = self._ticker_orders(spellings)
            self._journal.set_paper_mark(self.name, spellings[0], price, now)
            # No working order of the ticker (the usual case): nothing to fill, nothing changed.
            for row in self._live(ticker) if before else ():
                request = OrderRequest.from_row(json.loads(row["request"]))
                current = self._journal.paper_order(self.name, request.client_order_id)
                if current is None or current["status"] != row["status"]:
                    continue  # a sibling's fill cancelled it a moment ago (OCO)
                if request.order_type is OrderType.TRAILING_STOP:
                    fill_price = self._trail(request, current, price, now)
                else:
                    fill_price = books.fill_price(request, price, resting=True)
                if fill_price is None:
                    continue
                problem = self._affordability(request, fill_price)
                if problem:
                    self._finish(request.client_order_id, OrderStatus.REJECTED, problem, now)
                else:
                    self._fill(request, fill_price, now)
            after = self._ticker_orders(spellings) if before else {}
        if self._faults and self._faults[0][0] is Fault.LOSE_FILLS:
            self._faults.pop(0)
            return []  # the fills happened; the events about them are lost
        changed = [cid for cid, status in before.items() if after.get(cid) != status]
        states = [await self.get_order(client_order_id) for client_order_id in changed]
        return [state for state in states if state is not None]

    def _ticker_orders(self, spellings: tuple[str, ...]) -> dict[str, str]:
        orders: dict[str, str] = {}
        for spelling in spellings:
            orders |= self._journal.paper_ticker_orders(self.name, spelling)
        return orders

    # -- account -------------------------------------------------------------------------------

    async def position(self, ticker: str) -> Position:
        self._link()
        quantity, average = self._held(ticker)
        return Position(self.canonical_ticker(ticker), quantity, average)

    async def positions(self) -> list[Position]:
        self._link()
        return self._positions()

    def _positions(self) -> list[Position]:
        rows: dict[str, list[tuple[Decimal, Decimal | None]]] = {}
        for ticker, quantity, average in self._journal.paper_positions(self.name):
            rows.setdefault(self.canonical_ticker(ticker), []).append((quantity, average))
        merged = [(ticker, *books.merged(held)) for ticker, held in rows.items()]
        return [Position(t, q, a) for t, q, a in merged if q]

    def mark_problem(self, ticker: str, price: Decimal) -> str | None:
        """Why `price` cannot be the mark of `ticker` (None if it can)."""
        return mark_problem(price, self._tick(ticker))

    def _tick(self, ticker: str) -> Decimal | None:
        """The instrument's own tick, if it has one (None: the stock rule of SPEC §7)."""
        rules = self._rules(ticker)
        return None if isinstance(rules, str) else rules.tick_size

    def on_tick(self, ticker: str, price: Decimal) -> Decimal:
        """`price` on the instrument's tick, to the nearest one: a mark is where the market
        trades, and no market trades between ticks (an ES signalPrice of 5000.1 is 5000)."""
        tick = self._tick(ticker) or stock_tick(price)
        return (price / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick

    async def quote(self, ticker: str) -> Decimal | None:
        self._link()
        return self._mark(ticker)

    async def account(self) -> AccountSummary:
        self._link()
        cash = self._journal.paper_cash(self.name, self._initial_cash)
        equity = cash
        for position in await self.positions():
            mark = self._mark(position.ticker) or position.average_price or Decimal(0)
            equity += position.quantity * mark * self._multiplier(position.ticker)
        buying_power = max(self._buying_power(), Decimal(0))
        return AccountSummary(equity=equity, cash=cash, buying_power=buying_power)

    # -- books ---------------------------------------------------------------------------------

    def _affordability(self, request: OrderRequest, price: Decimal) -> str | None:
        """Why buying power cannot carry the order at `price` (None if it can; `books`)."""
        held, _ = self._held(request.ticker)
        return unaffordable(
            request,
            price,
            held=held,
            multiplier=self._multiplier(request.ticker),
            available=self._buying_power(),
        )

    def _buying_power(self) -> Decimal:
        """Buying power: cash less what the open shorts hold as collateral (their proceeds and
        Reg T's 50 % on top), at the marks."""
        cash = self._journal.paper_cash(self.name, self._initial_cash)
        shorts = Decimal(0)
        for position in self._positions():
            if position.quantity < 0:
                mark = self._mark(position.ticker) or position.average_price or Decimal(0)
                shorts -= position.quantity * mark * self._multiplier(position.ticker)
        return buying_power(cash, shorts)

    def _fill(self, request: OrderRequest, price: Decimal, now: datetime) -> None:
        cash = self._journal.paper_cash(self.name, self._initial_cash)
        self._journal.paper_apply_fill(
            account=self.name,
            fill_id=f"{request.client_order_id}-1",
            client_order_id=request.client_order_id,
            ticker=request.ticker,
            side=request.side,
            quantity=request.quantity,
            price=price,
            filled_at=now,
            cash=cash,
            multiplier=self._multiplier(request.ticker),
        )
        self._journal.paper_update_order(
            self.name,
            request.client_order_id,
            status=OrderStatus.FILLED,
            filled_quantity=request.quantity,
            average_fill_price=price,
            updated_at=now,
        )
        for child in self._journal.paper_children(self.name, request.client_order_id):
            if child["status"] == "held":  # the entry filled: its bracket becomes live
                self._journal.paper_update_order(
                    self.name,
                    child["client_order_id"],
                    status=OrderStatus.ACCEPTED,
                    message=None,
                    updated_at=now,
                )
                child_request = OrderRequest.from_row(json.loads(child["request"]))
                if child_request.order_type is OrderType.TRAILING_STOP:
                    self._start_trailing(child_request, price, now)
        row = self._journal.paper_order(self.name, request.client_order_id)
        if row is not None and row["parent"]:
            for sibling in self._journal.paper_children(self.name, row["parent"]):
                if sibling["status"] in WORKING:
                    self._finish(
                        sibling["client_order_id"],
                        OrderStatus.CANCELED,
                        f"one-cancels-other: {request.client_order_id} filled",
                        now,
                    )

    def _start_trailing(self, request: OrderRequest, mark: Decimal | None, now: datetime) -> None:
        """A trailing stop goes live: it trails from the mark of this moment (or the next)."""
        values: dict = {"trail_extreme": mark, "updated_at": now}
        if mark is not None:
            values["message"] = trail_words(request, mark)
        self._journal.paper_update_order(self.name, request.client_order_id, **values)

    def _trail(
        self, request: OrderRequest, row: dict, mark: Decimal, now: datetime
    ) -> Decimal | None:
        """Move a live trailing stop's best mark; the fill price (the mark) if it triggers."""
        best = Decimal(row["trail_extreme"]) if row["trail_extreme"] else None
        new_best, price = trailed(request, best, mark)
        if new_best != best:
            self._journal.paper_update_order(
                self.name,
                request.client_order_id,
                trail_extreme=new_best,
                message=trail_words(request, new_best),
                updated_at=now,
            )
        return price

    def _finish(
        self, client_order_id: str, status: OrderStatus, message: str, now: datetime
    ) -> None:
        self._journal.paper_update_order(
            self.name, client_order_id, status=status, message=message, updated_at=now
        )
        for child in self._journal.paper_children(self.name, client_order_id):
            if child["status"] == "held":  # an entry that will never fill takes its bracket along
                self._journal.paper_update_order(
                    self.name,
                    child["client_order_id"],
                    status=OrderStatus.CANCELED,
                    message=f"parent {client_order_id} {status}",
                    updated_at=now,
                )

    def _state(self, row: dict) -> OrderState:
        fills = self._journal.paper_fills(self.name, row["client_order_id"])
        return order_state(row, fills, self.canonical_ticker)


def _request_json(request: OrderRequest) -> str:
    return dumps({slot: getattr(request, slot) for slot in OrderRequest.__slots__})
