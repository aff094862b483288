"""Reading the paper broker's journaled books: positions under every spelling of an instrument,
marks, working orders, cash and buying power, and an order row as the `OrderState` a broker
answers.

It names instruments the default way (`NASDAQ:AAPL` is "AAPL"). Books written before tickers
were canonical may hold an instrument under another spelling: those rows are read together
with the canonical one (positions add up), never rewritten.
"""

from __future__ import annotations

import json
from decimal import Decimal

from tradepipe.brokers.paper import books
from tradepipe.brokers.paper.books import buying_power, order_state, unaffordable
from tradepipe.brokers.paper.instruments import PaperInstruments
from tradepipe.core.model import OrderRequest, OrderState, Position
from tradepipe.core.tickers import default_canonical_ticker
from tradepipe.journal import Journal


class Ledger:
    def __init__(
        self,
        account: str,
        journal: Journal,
        initial_cash: Decimal,
        instruments: PaperInstruments,
    ) -> None:
        self.account = account
        self.journal = journal
        self.initial_cash = initial_cash
        self.instruments = instruments
        # canonical ticker → the other spellings the books held it under when first read
        self._legacy: dict[str, tuple[str, ...]] | None = None

    @staticmethod
    def canonical(ticker: str) -> str:
        return default_canonical_ticker(ticker)

    def spellings(self, ticker: str) -> tuple[str, ...]:
        """The canonical ticker, then any spelling that books written before tickers were
        canonical hold the same instrument under (new rows are always canonical)."""
        canonical = self.canonical(ticker)
        if self._legacy is None:
            held = {t for t, _, _ in self.journal.paper_positions(self.account)}
            held |= {
                json.loads(row["request"])["ticker"]
                for row in self.journal.paper_open_orders(self.account)
            }
            legacy: dict[str, tuple[str, ...]] = {}
            for spelling in sorted(held):
                if (name := self.canonical(spelling)) != spelling:
                    legacy[name] = (*legacy.get(name, ()), spelling)
            self._legacy = legacy
        return (canonical, *self._legacy.get(canonical, ()))

    def held(self, ticker: str) -> tuple[Decimal, Decimal | None]:
        rows = (self.journal.paper_position(self.account, s) for s in self.spellings(ticker))
        return books.merged(rows)

    def mark(self, ticker: str) -> Decimal | None:
        marks = (self.journal.paper_mark(self.account, s) for s in self.spellings(ticker))
        return next((mark for mark in marks if mark is not None), None)

    def live(self, ticker: str) -> list[dict]:
        """The ticker's working orders (held bracket legs excluded), oldest first."""
        spellings = self.spellings(ticker)
        rows = [r for s in spellings for r in self.journal.paper_open_orders(self.account, s)]
        return rows if len(spellings) == 1 else sorted(rows, key=lambda r: r["created_at"])

    def ticker_orders(self, spellings: tuple[str, ...]) -> dict[str, str]:
        """Client order id → status of every order the ticker has, under all its spellings."""
        orders: dict[str, str] = {}
        for spelling in spellings:
            orders |= self.journal.paper_ticker_orders(self.account, spelling)
        return orders

    def positions(self) -> list[Position]:
        rows: dict[str, list[tuple[Decimal, Decimal | None]]] = {}
        for ticker, quantity, average in self.journal.paper_positions(self.account):
            rows.setdefault(self.canonical(ticker), []).append((quantity, average))
        merged = [(ticker, *books.merged(held)) for ticker, held in rows.items()]
        return [Position(t, q, a) for t, q, a in merged if q]

    def cash(self) -> Decimal:
        return self.journal.paper_cash(self.account, self.initial_cash)

    def value(self, position: Position) -> Decimal:
        """The position's value at its mark (its average price without one), in money."""
        mark = self.mark(position.ticker) or position.average_price or Decimal(0)
        return position.quantity * mark * self.instruments.multiplier(position.ticker)

    def buying_power(self) -> Decimal:
        """Cash less what the open shorts hold as collateral (their proceeds and Reg T's 50 %
        on top), at the marks."""
        shorts = -sum((self.value(p) for p in self.positions() if p.quantity < 0), Decimal(0))
        return buying_power(self.cash(), shorts)

    def affordability(self, request: OrderRequest, price: Decimal) -> str | None:
        """Why buying power cannot carry the order at `price` (None if it can; `books`)."""
        held, _ = self.held(request.ticker)
        return unaffordable(
            request,
            price,
            held=held,
            multiplier=self.instruments.multiplier(request.ticker),
            available=self.buying_power,  # summed over the positions only if needed
        )

    def state(self, row: dict) -> OrderState:
        fills = self.journal.paper_fills(self.account, row["client_order_id"])
        return order_state(row, fills, self.canonical)

    def state_of(self, row: dict, fills: list[dict]) -> OrderState:
        """The order's state from its row and all its fills' rows as they were written."""
        return order_state(row, fills, self.canonical)
