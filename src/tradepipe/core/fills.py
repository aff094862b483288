"""Which of a broker's reported fills the journal takes, so that its position never counts a
share twice nor misses one (SPEC §8).

Brokers report fills in different ways: the paper broker repeats every fill with each answer;
Alpaca's stream has execution ids but its REST answers only a cumulative filled quantity; IB
replays today's executions after a reconnect. The rule that holds for all of them: the fills
journaled for an order add up to the filled quantity the broker reports, never more. A reported
fill already journaled (same id) is skipped; one that would go past the filled quantity is cut
to the rest; and a filled quantity no reported fill explains (learned by polling, or after a
restart lost the adapter's memory) is journaled as one fill at the price that makes the order's
average come out as the broker's.

Pure: the journaled fills arrive as an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from tradepipe.core.model import Fill, OrderState, Side


def fills_to_journal(
    state: OrderState,
    journaled: Iterable[tuple[str, Decimal, Decimal]],
    side: Side,
    ticker: str,
    fallback_time: datetime,
) -> list[Fill]:
    """The fills to add for `state`, given the order's journaled fills as (id, quantity,
    price). Fill ids are the broker's own; a made-up fill is `<client id>:<filled quantity>`."""
    known = list(journaled)
    seen = {fill_id for fill_id, _, _ in known}
    counted = sum((q for _, q, _ in known), Decimal(0))
    value = sum((q * p for _, q, p in known), Decimal(0))
    remaining = state.filled_quantity - counted
    new: list[Fill] = []
    for fill in state.fills:
        if fill.fill_id in seen or remaining <= 0:
            continue
        quantity = min(fill.quantity, remaining)
        if quantity != fill.quantity:  # cut to the rest: its fee with it, pro rata
            fee = fill.fee * quantity / fill.quantity if fill.fee is not None else None
            fill = replace(fill, quantity=quantity, fee=fee)
        new.append(fill)
        seen.add(fill.fill_id)
        remaining -= quantity
        value += quantity * fill.price
    if remaining > 0 and state.average_fill_price is not None:
        price = (state.average_fill_price * state.filled_quantity - value) / remaining
        if price <= 0:  # the broker's average is rounded: never a price below zero
            price = state.average_fill_price
        latest = max((f.filled_at for f in state.fills), default=fallback_time)
        new.append(
            Fill(
                fill_id=f"{state.client_order_id}:{state.filled_quantity.normalize():f}",
                client_order_id=state.client_order_id,
                ticker=ticker,
                side=side,
                quantity=remaining,
                price=Decimal(f"{price.quantize(Decimal('0.00000001')).normalize():f}"),
                filled_at=latest,
            )
        )
    return new
