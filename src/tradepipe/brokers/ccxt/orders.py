"""Orders both ways between tradepipe and ccxt's unified API: our request as `create_order`'s
(type, price, params), or the reason it cannot be sent; ccxt's order dicts and trades as our
`OrderState` and `Fill`. No I/O: the adapter, `tradepipe.brokers.ccxt.broker`, does the talking.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tradepipe.core.model import (
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from tradepipe.errors import OrderRejected

# ccxt's unified order statuses → ours (an open order with fills is partially filled).
STATUSES = {
    "open": OrderStatus.ACCEPTED,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
TIME_IN_FORCE = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
}
LIMITED = (OrderType.LIMIT, OrderType.STOP_LIMIT)
TRIGGERED = (OrderType.STOP, OrderType.STOP_LIMIT)


def decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def order_type_of(order: dict[str, Any]) -> OrderType | None:
    trigger = order.get("triggerPrice") or order.get("stopPrice")
    match order.get("type"), bool(trigger):
        case "market", False:
            return OrderType.MARKET
        case "limit", False:
            return OrderType.LIMIT
        case "market", True:
            return OrderType.STOP
        case "limit", True:
            return OrderType.STOP_LIMIT
    return None


def order_args(
    request: OrderRequest,
    order_types: Collection[OrderType],
    exchange_id: str,
    price_on_step: Callable[[Decimal, str], Decimal],
) -> tuple[str, float | None, dict[str, Any]]:
    """ccxt's (type, price, params) for one request, or the reason it cannot be sent.
    `price_on_step(price, field)` answers the price as the market writes it or refuses it."""
    if request.order_type not in order_types:
        words = "trailing stops" if request.order_type is OrderType.TRAILING_STOP else None
        raise OrderRejected(
            f"{exchange_id} does not support {words or f'{request.order_type} orders'}"
        )
    if request.quantity <= 0:
        raise OrderRejected(f"{exchange_id}: quantity must be positive (got {request.quantity})")
    params: dict[str, Any] = {"clientOrderId": request.client_order_id}
    price = None
    if request.limit_price is not None and request.order_type in LIMITED:
        price = float(price_on_step(request.limit_price, "limit price"))
    if request.order_type in TRIGGERED:
        assert request.stop_price is not None
        params["triggerPrice"] = float(price_on_step(request.stop_price, "stop price"))
    tif = TIME_IN_FORCE.get(request.time_in_force)
    # A market order fills or fails at once: its day never ends (flatten sends DAY).
    immediate = request.order_type is OrderType.MARKET
    if tif is None and not (immediate and request.time_in_force is TimeInForce.DAY):
        raise OrderRejected(
            f"{exchange_id}: time in force {request.time_in_force} is not supported"
            f" (it takes: {', '.join(sorted(TIME_IN_FORCE))})"
        )
    if request.order_type in LIMITED:
        params["timeInForce"] = tif
    kind = "limit" if request.order_type in LIMITED else "market"
    return kind, price, params


def status_of(order: dict[str, Any]) -> tuple[OrderStatus, Decimal]:
    """A ccxt order's status and filled quantity."""
    filled = decimal(order.get("filled")) or Decimal(0)
    status = STATUSES.get(order.get("status") or "", OrderStatus.UNKNOWN)
    if status is OrderStatus.ACCEPTED and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    return status, filled


def to_order_state(
    order: dict[str, Any],
    client_order_id: str,
    ticker: str,
    fills: tuple[Fill, ...],
    exchange_id: str,
) -> OrderState:
    """Our view of a ccxt order, by our id (a cancel's answer names the cancel request)."""
    status, filled = status_of(order)
    kind = order_type_of(order)
    return OrderState(
        client_order_id=client_order_id,
        status=status,
        filled_quantity=filled,
        average_fill_price=decimal(order.get("average")) if filled else None,
        broker_order_id=order.get("id"),
        message=f"{exchange_id} status {order.get('status')}"
        if status is OrderStatus.REJECTED
        else None,
        fills=fills,
        ticker=ticker,
        side=Side(order["side"]) if order.get("side") in ("buy", "sell") else None,
        quantity=decimal(order.get("amount")),
        order_type=kind,
        limit_price=decimal(order.get("price")) if kind in LIMITED else None,
        stop_price=decimal(order.get("triggerPrice") or order.get("stopPrice")),
    )


def trades_of(order: dict[str, Any]) -> list[dict[str, Any]]:
    """The trades an order's answer carries with their ids (Binance: only a create's does)."""
    return [t for t in order.get("trades") or [] if t.get("id")]


def covers(trades: Sequence[dict[str, Any]], filled: Decimal) -> bool:
    """Do these trades add up to the order's filled quantity?"""
    return sum(Decimal(str(t["amount"])) for t in trades) == filled


def time_of(milliseconds: int | None, default: datetime) -> datetime:
    if milliseconds is None:
        return default
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


def to_fills(
    order: dict[str, Any],
    trades: Sequence[dict[str, Any]],
    *,
    client_order_id: str,
    ticker: str,
    side: Side,
    market_id: str,
    filled: Decimal,
    status: OrderStatus,
    now: datetime,
) -> tuple[Fill, ...]:
    """An order's trades as fills with the exchange's trade ids (the journal dedupes on them;
    trade ids are unique per market only). A filled order without trades (an exchange without
    trade ids) is one fill at its average price, stamped `now`."""
    fills = tuple(
        Fill(
            fill_id=f"{market_id}-{trade['id']}",
            client_order_id=client_order_id,
            ticker=ticker,
            side=side,
            quantity=Decimal(str(trade["amount"])),
            price=Decimal(str(trade["price"])),
            filled_at=time_of(
                trade.get("timestamp") or order.get("lastTradeTimestamp") or order.get("timestamp"),
                now,
            ),
            fee=decimal((trade.get("fee") or {}).get("cost")),
            fee_currency=(trade.get("fee") or {}).get("currency"),
        )
        for trade in trades
    )
    if not fills and status is OrderStatus.FILLED:
        average = decimal(order.get("average")) or decimal(order.get("price"))
        assert average is not None
        fills = (
            Fill(
                f"{market_id}-order-{order['id']}",
                client_order_id,
                ticker,
                side,
                filled,
                average,
                now,
            ),
        )
    return fills
