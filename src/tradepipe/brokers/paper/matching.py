"""The paper broker's matching, journaled: a new order meets the mark (fills, rests or is
refused), a later mark fills the resting orders it crosses, a trailing stop follows the best mark
since it went live, a fill releases its bracket's held legs and cancels their one-cancels-other
siblings. Every change is written to the paper books in the caller's transaction.

Fills are whole, at the mark (or the order's limit when the mark is better): the paper broker
plays a market deep enough for any order it accepts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradepipe.brokers.paper import books
from tradepipe.brokers.paper.books import trail_words, trailed
from tradepipe.brokers.paper.ledger import Ledger
from tradepipe.core.model import OrderRequest, OrderStatus, OrderType, TimeInForce
from tradepipe.errors import OrderRejected
from tradepipe.journal import dumps


@dataclass(frozen=True, slots=True)
class Met:
    """What a new order meeting the mark comes to at once: filled at `price`, or ended as
    `status` (refused, canceled) with `message`."""

    status: OrderStatus
    message: str | None = None
    price: Decimal | None = None


class Taken(Exception):
    """A new order's client order id is the account's already (a retried submit): nothing
    was written for it."""


class Matching:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.account = ledger.account
        self.journal = ledger.journal
        self.instruments = ledger.instruments

    def insert(
        self,
        request: OrderRequest,
        now: datetime,
        status: str,
        parent: str | None = None,
        new_only: bool = False,
        **final: Any,
    ) -> dict[str, Any]:
        """Write a new order's row (`final`: the columns of the state it ends in at once);
        answers the row as written. `new_only`: raise Taken, having written nothing, if the
        account has an order of this client order id already."""
        journal = self.journal
        insert = journal.paper_insert_new_order if new_only else journal.paper_insert_order
        row = insert(
            account=self.account,
            client_order_id=request.client_order_id,
            broker_order_id=f"P-{request.client_order_id}",
            request=_request_json(request),
            status=status,
            parent=parent,
            created_at=now,
            updated_at=now,
            **final,
        )
        if row is None:
            raise Taken(request.client_order_id)
        return row

    def open(
        self,
        request: OrderRequest,
        mark: Decimal | None,
        now: datetime,
        *,
        status: str = OrderStatus.ACCEPTED,
        parent: str | None = None,
        children: Sequence[OrderRequest] = (),
        affordable: bool = False,
        new_only: bool = False,
    ) -> None:
        """A new order and its bracket's legs (held until it fills, as a broker holds them).
        Unless it is held itself, the order meets the mark (`meet`): one that fills whole or
        is refused or canceled at once is inserted in that final state, its row written once
        (no insert then update in the same call); one that rests is inserted as `status`, and
        a trailing stop starts trailing (`new_only`: unless its id is taken, see `insert`).
        Its legs are inserted after it; its fill then releases them, its end cancels them."""
        met = None if status == OrderStatus.HELD else self.meet(request, mark, affordable)
        final: dict[str, Any] = {}
        if met is not None and met.price is not None:
            final = {"filled_quantity": request.quantity, "average_fill_price": met.price}
        elif met is not None:
            final = {"message": met.message}
        row = self.insert(
            request, now, met.status if met else status, parent, new_only=new_only, **final
        )
        for child in children:
            self.insert(child, now, OrderStatus.HELD, parent=request.client_order_id)
        if met is not None and met.price is not None:
            self._book(request, met.price, now)
            self._filled(request, met.price, now, row)
        elif met is not None:
            self._end_children(request.client_order_id, met.status, now)
        elif status != OrderStatus.HELD and request.order_type is OrderType.TRAILING_STOP:
            self.start_trailing(request, mark, now)

    def refuse_unaffordable(self, request: OrderRequest, mark: Decimal | None) -> None:
        """A new order that would execute at once but that buying power cannot carry is
        refused, as a broker refuses it (resting orders are checked when a mark fills them)."""
        if request.order_type is OrderType.TRAILING_STOP:
            return
        price = books.fill_price(request, mark)
        problem = None if price is None else self.ledger.affordability(request, price)
        if problem:
            raise OrderRejected(problem)

    def meet(
        self, request: OrderRequest, mark: Decimal | None, affordable: bool = False
    ) -> Met | None:
        """What a new order comes to at the mark: filled, refused or canceled at once, or
        None (it rests; a trailing stop trails). `affordable`: the caller refused it at this
        mark already if buying power could not carry it."""
        if request.order_type is OrderType.TRAILING_STOP:
            return None
        price = books.fill_price(request, mark)
        if request.order_type is OrderType.MARKET and price is None:
            return Met(
                OrderStatus.REJECTED,
                f"no price for {request.ticker}: send signalPrice or run"
                f" `tradepipe paper quote {self.account} {request.ticker} PRICE`",
            )
        if price is not None:
            problem = None if affordable else self.ledger.affordability(request, price)
            if problem:
                return Met(OrderStatus.REJECTED, problem)
            return Met(OrderStatus.FILLED, price=price)
        if request.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            return Met(
                OrderStatus.CANCELED, f"{request.time_in_force} order did not cross the mark"
            )
        return None

    def match(self, ticker: str, price: Decimal, now: datetime) -> None:
        """A new mark: fill every working order of the ticker it crosses, oldest first."""
        for row in self.ledger.live(ticker):
            request = OrderRequest.from_row(json.loads(row["request"]))
            current = self.journal.paper_working_order(self.account, request.client_order_id)
            if current is None or current["status"] != row["status"]:
                continue  # a sibling's fill cancelled it a moment ago (OCO)
            if request.order_type is OrderType.TRAILING_STOP:
                fill_price = self.trail(request, current, price, now)
            else:
                fill_price = books.fill_price(request, price, resting=True)
            if fill_price is None:
                continue
            problem = self.ledger.affordability(request, fill_price)
            if problem:
                self.finish(request.client_order_id, OrderStatus.REJECTED, problem, now)
            else:
                self.fill(request, fill_price, now)

    def fill(self, request: OrderRequest, price: Decimal, now: datetime) -> None:
        """A working order (its row written before: a resting order a mark crosses) fills
        whole at `price`; a new one that fills at once is written filled by `open`."""
        self._book(request, price, now)
        row = self.journal.paper_update_order(
            self.account,
            request.client_order_id,
            status=OrderStatus.FILLED,
            filled_quantity=request.quantity,
            average_fill_price=price,
            updated_at=now,
        )
        self._filled(request, price, now, row)

    def _book(self, request: OrderRequest, price: Decimal, now: datetime) -> None:
        """The execution: its fill row, the position and the cash."""
        self.journal.paper_apply_fill(
            account=self.account,
            fill_id=f"{request.client_order_id}-1",
            client_order_id=request.client_order_id,
            ticker=request.ticker,
            side=request.side,
            quantity=request.quantity,
            price=price,
            filled_at=now,
            cash=self.ledger.cash(),
            multiplier=self.instruments.multiplier(request.ticker),
        )

    def _filled(
        self, request: OrderRequest, price: Decimal, now: datetime, row: dict | None
    ) -> None:
        """The order (`row`, as written filled) filled: its held legs go live and its
        one-cancels-other siblings are canceled."""
        self.release_children(request.client_order_id, price, now)
        if row is not None and row["parent"]:
            for sibling in self.journal.paper_children(self.account, row["parent"]):
                if sibling["status"] in books.WORKING:
                    self.finish(
                        sibling["client_order_id"],
                        OrderStatus.CANCELED,
                        f"one-cancels-other: {request.client_order_id} filled",
                        now,
                    )

    def children(self, client_order_id: str) -> list[dict]:
        """The order's bracket legs, oldest first; from what this call wrote when it created
        the order (journal/paper_books.py `Written.children`), else read."""
        written = self.journal.paper_written
        known = written.children(self.account, client_order_id) if written else None
        if known is not None:
            return known
        return self.journal.paper_children(self.account, client_order_id)

    def release_children(self, client_order_id: str, price: Decimal, now: datetime) -> None:
        """The entry filled at `price`: its held bracket legs go live."""
        for child in self.children(client_order_id):
            if child["status"] == OrderStatus.HELD:
                self.journal.paper_update_order(
                    self.account,
                    child["client_order_id"],
                    status=OrderStatus.ACCEPTED,
                    message=None,
                    updated_at=now,
                )
                child_request = OrderRequest.from_row(json.loads(child["request"]))
                if child_request.order_type is OrderType.TRAILING_STOP:
                    self.start_trailing(child_request, price, now)

    def start_trailing(self, request: OrderRequest, mark: Decimal | None, now: datetime) -> None:
        """A trailing stop goes live: it trails from the mark of this moment (or the next)."""
        values: dict = {"trail_extreme": mark, "updated_at": now}
        if mark is not None:
            values["message"] = trail_words(request, mark)
        self.journal.paper_update_order(self.account, request.client_order_id, **values)

    def trail(
        self, request: OrderRequest, row: dict, mark: Decimal, now: datetime
    ) -> Decimal | None:
        """Move a live trailing stop's best mark; the fill price (the mark) if it triggers."""
        best = Decimal(row["trail_extreme"]) if row["trail_extreme"] else None
        new_best, price = trailed(request, best, mark)
        if new_best != best:
            self.journal.paper_update_order(
                self.account,
                request.client_order_id,
                trail_extreme=new_best,
                message=trail_words(request, new_best),
                updated_at=now,
            )
        return price

    def finish(
        self, client_order_id: str, status: OrderStatus, message: str, now: datetime
    ) -> None:
        self.journal.paper_update_order(
            self.account, client_order_id, status=status, message=message, updated_at=now
        )
        self._end_children(client_order_id, status, now)

    def _end_children(self, client_order_id: str, status: OrderStatus, now: datetime) -> None:
        """An entry that will never fill takes its held bracket legs along."""
        for child in self.children(client_order_id):
            if child["status"] == OrderStatus.HELD:
                self.journal.paper_update_order(
                    self.account,
                    child["client_order_id"],
                    status=OrderStatus.CANCELED,
                    message=f"parent {client_order_id} {status}",
                    updated_at=now,
                )


def _request_json(request: OrderRequest) -> str:
    return dumps({slot: getattr(request, slot) for slot in OrderRequest.__slots__})
