"""Fills out of Alpaca's cumulative quantities: what one order has filled so far, as fills whose
ids the journal dedupes on, the same whether a fill was learned from a stream event or a REST
answer. No I/O: the adapter, `tradepipe.brokers.alpaca.broker`, feeds it what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tradepipe.core.model import Fill, Side


@dataclass
class FillBook:
    """What the adapter has seen of one Alpaca order's fills: fill ids are checkpoints of the
    cumulative filled quantity (`<alpaca id>:<cumulative>`), the same whichever way — stream
    event or REST answer — a fill is learned, so the journal counts each once."""

    fills: list[Fill] = field(default_factory=list)

    @property
    def filled(self) -> Decimal:
        return sum((f.quantity for f in self.fills), Decimal(0))

    @property
    def cost(self) -> Decimal:
        return sum((f.quantity * f.price for f in self.fills), Decimal(0))

    def reach(
        self,
        order_id: str,
        client_order_id: str,
        ticker: str,
        side: Side,
        cumulative: Decimal,
        average: Decimal | None,
        at: datetime,
    ) -> None:
        """The order has filled `cumulative` in all at `average`: a fill for what is new."""
        quantity = cumulative - self.filled
        if quantity <= 0 or average is None:
            return
        price = (average * cumulative - self.cost) / quantity
        price = price.quantize(Decimal("0.000000001")).normalize()
        fill_id = f"{order_id}:{cumulative.normalize()}"
        self.fills.append(Fill(fill_id, client_order_id, ticker, side, quantity, price, at))

    def learn_event(
        self,
        order_id: str,
        client_order_id: str,
        ticker: str,
        side: Side,
        *,
        cumulative: Decimal,
        quantity: Decimal,
        price: Decimal,
        average: Decimal,
        at: datetime,
    ) -> None:
        """A fill event (`quantity` at `price`, `cumulative` in all at `average`): the fills
        before it (if a gap in the stream hid them), then this one."""
        before = cumulative - quantity
        if before > self.filled:
            earlier = (average * cumulative - price * quantity) / before
            self.reach(order_id, client_order_id, ticker, side, before, earlier, at)
        now = (self.cost + price * quantity) / cumulative
        self.reach(order_id, client_order_id, ticker, side, cumulative, now, at)
