"""An order's fills from ccxt: its trades with the exchange's trade ids (fetched when the
order's answer did not carry them all), cached per order until its filled quantity changes."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.brokers.ccxt.orders import covers, to_fills, trades_of
from tradepipe.core.model import Fill, OrderStatus, Side

if TYPE_CHECKING:
    from tradepipe.brokers.ccxt.broker import CcxtBroker


async def fills_of(
    broker: CcxtBroker,
    order: dict[str, Any],
    cid: str,
    symbol: str,
    filled: Decimal,
    status: OrderStatus,
) -> tuple[Fill, ...]:
    """The order's trades with the exchange's trade ids (the journal dedupes on them)."""
    if filled <= 0:
        return ()
    cached = broker._fills.get(cid)
    if cached is not None and cached[0] == filled:
        return cached[1]
    side = Side(order["side"])
    trades = trades_of(order)
    if not covers(trades, filled) and broker.exchange.has.get("fetchOrderTrades"):
        # the order's answer did not carry all its trades (Binance: only a create does)
        with broker._errors():
            trades = await broker.exchange.fetch_order_trades(order["id"], symbol)
    fills = to_fills(
        order,
        trades,
        client_order_id=cid,
        ticker=broker._ticker(symbol),
        side=side,
        market_id=broker.exchange.markets[symbol]["id"],
        filled=filled,
        status=status,
        now=broker.clock(),
    )
    broker._fills[cid] = (filled, fills)
    return fills
