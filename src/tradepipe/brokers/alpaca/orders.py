"""An order as Alpaca takes it: what Alpaca would refuse, refused before sending in words that
name the limit (its price increments, quantities, brackets, replaces), and our order written as
alpaca-py's request model. No I/O: the adapter, `tradepipe.brokers.alpaca.broker`, sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from alpaca.trading.enums import OrderClass
from alpaca.trading.enums import TimeInForce as AlpacaTimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.requests import OrderRequest as AlpacaOrderRequest

from tradepipe.brokers.alpaca.parsing import decimal, is_crypto, is_option
from tradepipe.brokers.base import InstrumentRules
from tradepipe.core.instruments import InstrumentKind
from tradepipe.core.model import OrderRequest, OrderRole, OrderState, OrderType, TimeInForce
from tradepipe.core.prices import stock_tick
from tradepipe.errors import OrderRejected

MAX_QTY_DECIMALS = 9


def asset_rules(asset: dict[str, Any]) -> InstrumentRules:
    """A crypto asset's increments (Alpaca's `/v2/assets/{symbol}`); its class says its kind.
    One unit of a stock or a coin is worth its price (multiplier 1)."""
    crypto = asset.get("class") == "crypto"
    return InstrumentRules(
        tick_size=decimal(asset.get("price_increment")),
        lot_size=decimal(asset.get("min_trade_increment")),
        min_quantity=decimal(asset.get("min_order_size")),
        kind=InstrumentKind.CRYPTO if crypto else InstrumentKind.STOCK,
    )


def check_prices(request: OrderRequest, rules: InstrumentRules) -> None:
    """Refuse before sending what Alpaca would refuse for its price increments: the sub-penny
    rule for stocks (≥ $1: 2 decimals, < $1: 4), 2 decimals for options, the asset's
    `price_increment` for crypto."""
    for field in ("limit_price", "stop_price", "trail_amount"):
        price = getattr(request, field)
        if price is None:
            continue
        if price <= 0:
            raise OrderRejected(f"{request.ticker}: {field} {price} must be positive")
        if is_crypto(request.ticker):
            tick, why = rules.tick_size, "the asset's price increment"
        elif is_option(request.ticker):
            tick, why = Decimal("0.01"), "options take 2 decimals"
        else:
            tick = stock_tick(price)
            why = "sub-penny rule: 2 decimals at or above $1, 4 below"
        if tick is not None and price % tick != 0:
            raise OrderRejected(
                f"{request.ticker}: {field} {price} is not a multiple of {tick} ({why})"
            )


def check_quantity(request: OrderRequest, rules: InstrumentRules) -> None:
    quantity = request.quantity
    if quantity <= 0:
        raise OrderRejected(f"{request.ticker}: quantity {quantity} must be positive")
    exponent = quantity.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_QTY_DECIMALS:
        raise OrderRejected(
            f"{request.ticker}: quantity {quantity} has more than {MAX_QTY_DECIMALS} decimals"
        )
    if is_crypto(request.ticker):
        if rules.lot_size and quantity % rules.lot_size != 0:
            raise OrderRejected(
                f"{request.ticker}: quantity {quantity} is not a multiple of {rules.lot_size}"
                " (the asset's min_trade_increment)"
            )
        if rules.min_quantity and quantity < rules.min_quantity:
            raise OrderRejected(
                f"{request.ticker}: quantity {quantity} is below {rules.min_quantity}"
                " (the asset's min_order_size)"
            )
        return
    if quantity % 1 == 0:
        return
    if is_option(request.ticker):
        raise OrderRejected(f"{request.ticker}: quantity {quantity}: options trade whole contracts")
    if request.order_type is not OrderType.MARKET or request.time_in_force is not TimeInForce.DAY:
        raise OrderRejected(
            f"{request.ticker}: fractional quantity {quantity} is allowed for market day orders"
            f" only (this one is {request.order_type} {request.time_in_force})"
        )


def check_order(request: OrderRequest, rules: InstrumentRules) -> None:
    """What Alpaca would refuse, refused before sending, in words that name the limit."""
    check_quantity(request, rules)
    check_prices(request, rules)
    if request.extended_hours and (
        request.order_type is not OrderType.LIMIT or request.time_in_force is not TimeInForce.DAY
    ):
        raise OrderRejected(
            f"{request.ticker}: extended hours take limit day orders only"
            f" (this one is {request.order_type} {request.time_in_force})"
        )
    if is_crypto(request.ticker):
        if request.order_type not in (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT):
            raise OrderRejected(
                f"{request.ticker}: crypto takes market, limit and stop_limit orders"
                f" (not {request.order_type})"
            )
        if request.time_in_force not in (TimeInForce.GTC, TimeInForce.IOC):
            raise OrderRejected(
                f"{request.ticker}: crypto takes time in force gtc or ioc"
                f" (not {request.time_in_force})"
            )
    if is_option(request.ticker):
        # Alpaca's options: market, limit, stop, stop_limit; day or gtc (its TimeInForce
        # schema, documented for options since 2026-08-28); regular hours only.
        if request.order_type is OrderType.TRAILING_STOP:
            raise OrderRejected(f"{request.ticker}: options take no trailing stops")
        if request.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
            raise OrderRejected(
                f"{request.ticker}: options take time in force day or gtc"
                f" (not {request.time_in_force})"
            )
        if request.extended_hours:
            raise OrderRejected(f"{request.ticker}: options trade in regular hours only")


def check_bracket(entry: OrderRequest, children: Sequence[OrderRequest]) -> None:
    """Alpaca's bracket: one take-profit (limit) and/or one stop-loss (stop or stop-limit), for
    the entry's whole quantity, on the other side, day or gtc."""
    if is_option(entry.ticker):
        # Alpaca's order classes for options are simple and mleg: no bracket, no OTO.
        raise OrderRejected(
            f"{entry.ticker}: Alpaca takes no bracket for an option (simple orders only):"
            " send the take-profit and stop-loss as their own orders"
        )
    roles = [c.role for c in children]
    if len(set(roles)) != len(roles) or not set(roles) <= {
        OrderRole.TAKE_PROFIT,
        OrderRole.STOP_LOSS,
    }:
        raise OrderRejected(
            f"{entry.ticker}: an Alpaca bracket takes one take-profit and one stop-loss"
            f" (got {', '.join(map(str, roles))})"
        )
    if entry.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
        raise OrderRejected(
            f"{entry.ticker}: an Alpaca bracket takes time in force day or gtc"
            f" (not {entry.time_in_force})"
        )
    for child in children:
        allowed = (
            (OrderType.LIMIT,)
            if child.role is OrderRole.TAKE_PROFIT
            else (OrderType.STOP, OrderType.STOP_LIMIT)
        )
        if child.order_type not in allowed:
            raise OrderRejected(
                f"{entry.ticker}: an Alpaca bracket's {child.role} is"
                f" {' or '.join(map(str, allowed))} (not {child.order_type})"
            )
        if child.quantity != entry.quantity or child.side is entry.side:
            raise OrderRejected(
                f"{entry.ticker}: an Alpaca bracket's {child.role} closes the entry's whole"
                f" quantity {entry.quantity} on the other side"
                f" (got {child.side} {child.quantity})"
            )


def check_replace(
    client_order_id: str, old: OrderState, old_status: Any, request: OrderRequest
) -> None:
    """What Alpaca's PATCH cannot do: replace a final order, change the order type or side,
    take a fractional quantity. `old_status` is Alpaca's own word for the old order's status."""
    if old.status.is_final:
        raise OrderRejected(f"alpaca: order {client_order_id} is {old_status}: nothing to replace")
    if old.order_type is not request.order_type or old.side is not request.side:
        raise OrderRejected(
            f"alpaca: a replace keeps the order type and side ({old.order_type}"
            f" {old.side}); {request.order_type} {request.side} needs a new order"
        )
    if request.quantity % 1 != 0:
        raise OrderRejected(f"alpaca: a replace takes a whole quantity (not {request.quantity})")


def money(value: Decimal | None) -> float | None:
    # alpaca-py puts floats on the wire: a checked Decimal's shortest repr is exact.
    return None if value is None else float(value)


def needed_money(request: OrderRequest, field: str) -> float:
    """A price the order cannot go without (a take-profit's limit, a stop-loss's stop)."""
    value = getattr(request, field)
    if value is None:
        raise OrderRejected(f"{request.ticker}: the {request.role} order has no {field}")
    return float(value)


def to_alpaca_request(
    request: OrderRequest, children: Sequence[OrderRequest] = ()
) -> AlpacaOrderRequest:
    """Our order (and bracket children) as alpaca-py's request model."""
    fields: dict[str, Any] = {
        "symbol": request.ticker,
        "qty": float(request.quantity),
        "side": str(request.side),
        "time_in_force": str(request.time_in_force),
        "client_order_id": request.client_order_id,
        "extended_hours": request.extended_hours or None,
    }
    if children:
        take_profit = next((c for c in children if c.role is OrderRole.TAKE_PROFIT), None)
        stop_loss = next((c for c in children if c.role is OrderRole.STOP_LOSS), None)
        fields["order_class"] = OrderClass.BRACKET if take_profit and stop_loss else OrderClass.OTO
        if take_profit is not None:
            fields["take_profit"] = TakeProfitRequest(
                limit_price=needed_money(take_profit, "limit_price")
            )
        if stop_loss is not None:
            fields["stop_loss"] = StopLossRequest(
                stop_price=needed_money(stop_loss, "stop_price"),
                limit_price=money(stop_loss.limit_price),
            )
    kind = request.order_type
    try:
        if kind is OrderType.MARKET:
            return MarketOrderRequest(**fields)
        if kind is OrderType.LIMIT:
            return LimitOrderRequest(**fields, limit_price=money(request.limit_price))
        if kind is OrderType.STOP:
            return StopOrderRequest(**fields, stop_price=money(request.stop_price))
        if kind is OrderType.STOP_LIMIT:
            return StopLimitOrderRequest(
                **fields,
                stop_price=money(request.stop_price),
                limit_price=money(request.limit_price),
            )
        return TrailingStopOrderRequest(
            **fields,
            trail_price=money(request.trail_amount),
            trail_percent=money(request.trail_percent),
        )
    except ValueError as e:  # alpaca-py's own validation (pydantic)
        raise OrderRejected(f"{request.ticker}: alpaca-py refused the order: {e}") from None


def to_alpaca_replace(request: OrderRequest) -> ReplaceOrderRequest:
    """A checked replace (`check_replace`) as alpaca-py's PATCH body: quantity, prices and time
    in force, under the new client order id."""
    return ReplaceOrderRequest(
        qty=int(request.quantity),
        time_in_force=AlpacaTimeInForce(str(request.time_in_force)),
        limit_price=money(request.limit_price),
        stop_price=money(request.stop_price),
        trail=money(request.trail_amount or request.trail_percent),
        client_order_id=request.client_order_id,
    )
