"""Reading Alpaca's orders as ours: listing and looking them up (a bracket leg through its
entry, a duplicate found again), the ids of the legs Alpaca named itself, and the fills and
working orders seen so far."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from alpaca.common.enums import Sort
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from tradepipe.brokers.alpaca.fills import FillBook
from tradepipe.brokers.alpaca.parsing import (
    decimal,
    is_alpaca_named,
    leg_role,
    parse_time,
    to_order_state,
)
from tradepipe.brokers.alpaca.transport import NotFound
from tradepipe.core.ids import leg_of, sibling_id
from tradepipe.core.model import OrderRequest, OrderState, Side
from tradepipe.errors import BrokerUnavailable

STREAM_LIMIT = 500  # orders per page of the re-sync (Alpaca's maximum)


class OrderLookup:
    """One account's orders as last seen, and how to find them again."""

    def __init__(
        self,
        trading: TradingClient,
        call: Callable[..., Awaitable[Any]],
        clock: Callable[[], datetime],
    ) -> None:
        self._trading = trading
        self._call = call
        self._clock = clock
        self.books: dict[str, FillBook] = {}
        # Our ids of bracket legs Alpaca named itself: alpaca order id → our client id.
        self.legs: dict[str, str] = {}
        # Orders not final as last seen (alpaca id → our client id), and what was last reported.
        self.working: dict[str, str] = {}
        self.seen_at: datetime | None = None  # the broker's time of the latest event seen

    async def missed(self) -> list[dict]:
        """What changed while the stream was away: orders submitted since the last event
        seen, and every order we last saw working."""
        since = self.seen_at - timedelta(seconds=5) if self.seen_at else None
        orders = await self.list_orders(QueryOrderStatus.ALL, after=since)
        seen = {o["id"] for o in orders}
        for order_id in [i for i in self.working if i not in seen]:
            try:
                found = await self._call(
                    "re-syncing an order", self._trading.get_order_by_id, order_id
                )
            except NotFound:
                continue
            orders.append(found)
        return orders

    async def list_orders(
        self,
        status: QueryOrderStatus,
        *,
        after: datetime | None = None,
        ticker: str | None = None,
    ) -> list[dict]:
        """Orders with their legs flattened out (`nested`, so each leg knows its entry)."""
        flat: list[dict] = []
        while True:
            query = GetOrdersRequest(
                status=status,
                limit=STREAM_LIMIT,
                nested=True,
                after=after,
                # Paged forward from `after`; without it, the latest orders.
                direction=Sort.ASC if after else Sort.DESC,
                symbols=[ticker] if ticker else None,
            )
            page = await self._call("listing orders", self._trading.get_orders, query)
            for order in page:
                flat.append(order)
                for leg in order.get("legs") or ():
                    self.name_leg(order, leg)
                    flat.append(leg)
            if len(page) < STREAM_LIMIT or after is None:
                return flat
            after = parse_time(page[-1].get("submitted_at"))

    def name_leg(self, entry: dict, leg: dict) -> None:
        if is_alpaca_named(str(leg.get("client_order_id", ""))) and leg["id"] not in self.legs:
            self.legs[leg["id"]] = sibling_id(entry["client_order_id"], str(leg_role(leg)))

    def client_id(self, order: dict) -> str:
        return self.legs.get(order["id"], order["client_order_id"])

    def book(self, order: dict) -> FillBook:
        return self.books.setdefault(order["id"], FillBook())

    def state(self, order: dict) -> OrderState:
        """An Alpaca order (raw JSON) as our OrderState; remembers its fills and legs."""
        for leg in order.get("legs") or ():
            self.name_leg(order, leg)
        cid = self.client_id(order)
        side = Side(order["side"]) if order.get("side") else None
        filled = decimal(order.get("filled_qty")) or Decimal(0)
        book = self.book(order)
        if filled > book.filled and side is not None:
            at = parse_time(order.get("filled_at") or order.get("updated_at")) or self._clock()
            average = decimal(order.get("filled_avg_price"))
            book.reach(order["id"], cid, str(order.get("symbol")), side, filled, average, at)
        updated = parse_time(order.get("updated_at"))
        if updated is not None:
            self.seen_at = max(self.seen_at or updated, updated)
        state = to_order_state(order, cid, tuple(book.fills))
        if state.status.is_final:
            self.working.pop(order["id"], None)
        else:
            self.working[order["id"]] = cid
        return state

    def placed(self, placed: dict, children: Sequence[OrderRequest]) -> list[OrderState]:
        """A bracket as Alpaca placed it: the legs it named, known by our children's ids from
        now on; the entry's state, then each leg's."""
        legs = {leg_role(leg): leg for leg in placed.get("legs") or ()}
        for child in children:
            leg = legs.get(child.role)
            if leg is not None:
                self.legs[leg["id"]] = child.client_order_id
        states = [self.state(placed)]
        states += [self.state(legs[c.role]) for c in children if c.role in legs]
        return states

    async def found_again(self, client_order_id: str, account: str) -> dict:
        """An order Alpaca refused as a duplicate (sent before: a retry, a restart), found by
        its id; BrokerUnavailable when it cannot be (nothing is sent again)."""
        found = await self.find(client_order_id)
        if found is None:
            raise BrokerUnavailable(
                f"alpaca account {account}: {client_order_id} is a duplicate but cannot be found"
            ) from None
        return found

    async def find(self, client_order_id: str) -> dict | None:
        """The Alpaca order behind one of our ids (a bracket leg through its entry)."""
        try:
            return await self._call(
                "looking up an order", self._trading.get_order_by_client_id, client_order_id
            )
        except NotFound:
            pass
        if leg_of(client_order_id) not in ("take_profit", "stop_loss"):
            return None
        entry_id = sibling_id(client_order_id, "entry")
        try:
            entry = await self._call(
                "looking up a bracket", self._trading.get_order_by_client_id, entry_id
            )
        except NotFound:
            return None
        for leg in entry.get("legs") or ():
            self.name_leg(entry, leg)
            if self.legs.get(leg["id"]) == client_order_id:
                return leg
        return None

    def learn_fill(self, order: dict, data: dict, at: datetime) -> None:
        """A fill event: the fills before it (if a gap hid them), then this one."""
        cumulative, quantity = decimal(order.get("filled_qty")), decimal(data.get("qty"))
        price = decimal(data.get("price"))
        if cumulative is None or quantity is None or price is None:
            return
        book = self.book(order)
        average = decimal(order.get("filled_avg_price")) or price
        ticker, side = str(order.get("symbol")), Side(str(order.get("side")))
        book.learn_event(
            order["id"],
            self.client_id(order),
            ticker,
            side,
            cumulative=cumulative,
            quantity=quantity,
            price=price,
            average=average,
            at=at,
        )
