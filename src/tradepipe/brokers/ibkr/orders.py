"""IB's orders, statuses, executions and positions read as ours (`OrderState`, `Fill`,
`Position`), and our orders written as IB orders, without any I/O. Tickers, contracts and
numbers are `translation`'s."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import ib_async

from tradepipe.brokers.ibkr.translation import (
    execution_revision,
    parse_number,
    parse_quantity,
    ticker_of,
)
from tradepipe.core.model import (
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from tradepipe.errors import OrderRejected

# ib_async's order statuses → ours (ValidationError: a warning, the order is still live).
# Inactive is not final at IB: the order is held (outside trading hours, a hold, a check) and
# may become active again, so it stays open, with IB's words (`parse_status`).
STATUSES = {
    "PendingSubmit": OrderStatus.SUBMITTED,
    "ApiPending": OrderStatus.SUBMITTED,
    "PreSubmitted": OrderStatus.ACCEPTED,
    "Submitted": OrderStatus.ACCEPTED,
    "PendingCancel": OrderStatus.ACCEPTED,
    "ValidationError": OrderStatus.ACCEPTED,
    "ApiUpdate": OrderStatus.ACCEPTED,
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "ApiCancelled": OrderStatus.CANCELED,
    "Inactive": OrderStatus.ACCEPTED,
}
# After these IB does nothing more with an order. ib_async's `isDone()` / `openTrades()` also
# count Inactive as done: the adapter asks this set instead.
FINAL = frozenset({"Filled", "Cancelled", "ApiCancelled"})
CANCELED_CODES = frozenset({202, 10148})  # "Order Canceled", not a rejection
ORDER_TYPES = {
    OrderType.MARKET: "MKT",
    OrderType.LIMIT: "LMT",
    OrderType.STOP: "STP",
    OrderType.STOP_LIMIT: "STP LMT",
    OrderType.TRAILING_STOP: "TRAIL",
}
IB_ORDER_TYPES = {v: k for k, v in ORDER_TYPES.items()} | {
    "MOC": OrderType.MARKET,
    "LOC": OrderType.LIMIT,
}
_LOGGED_ERROR = re.compile(
    r"^(?:Error|Warning) \d+, reqId -?\d+: (?P<text>.*?)(?:, contract: .*)?$"
)


# -- orders ------------------------------------------------------------------------------------


def to_ib_order(request: OrderRequest, account: str | None) -> ib_async.Order:
    """Our order as an IB order; what IB cannot take is refused naming the field."""
    if request.quantity <= 0 or request.quantity != request.quantity.to_integral_value():
        raise OrderRejected(
            f"IB: quantity {request.quantity} of {request.ticker} must be a positive whole"
            " number (fractional orders are off)"
        )
    order_type = ORDER_TYPES[request.order_type]
    tif = request.time_in_force.value.upper()
    if request.time_in_force is TimeInForce.CLS:
        closing = {OrderType.MARKET: "MOC", OrderType.LIMIT: "LOC"}
        if request.order_type not in closing:
            raise OrderRejected(
                f"IB: time in force cls works with market or limit orders (market-on-close,"
                f" limit-on-close), not {request.order_type}"
            )
        order_type, tif = closing[request.order_type], "DAY"
    order = ib_async.Order(
        action="BUY" if request.side is Side.BUY else "SELL",
        totalQuantity=float(request.quantity),
        orderType=order_type,
        tif=tif,
        orderRef=request.client_order_id,
        account=account or "",
        outsideRth=request.extended_hours,
        transmit=True,
    )
    if request.limit_price is not None:
        order.lmtPrice = request.limit_price
    if request.order_type is OrderType.TRAILING_STOP:
        if request.trail_amount is not None:
            order.auxPrice = request.trail_amount
        elif request.trail_percent is not None:
            order.trailingPercent = request.trail_percent
        else:
            raise OrderRejected("IB: a trailing stop needs trail_amount or trail_percent")
    elif request.stop_price is not None:
        order.auxPrice = request.stop_price
    return order


def to_ib_modify(
    client_order_id: str, working: ib_async.Order, request: OrderRequest
) -> ib_async.Order:
    """A move of a working order, as IB takes it: the same order (its order id, parent, OCA
    group) sent again with the request's quantity, prices and time in force, and the request's
    client order id in `orderRef` — so that a move sent again finds it done. A copy: ib_async's
    trade keeps what IB holds until IB answers. The order type and side stay."""
    new = to_ib_order(request, working.account or None)
    if (new.orderType, new.action) != (working.orderType, working.action):
        raise OrderRejected(
            f"IB: moving {client_order_id} keeps its order type and side ({working.orderType}"
            f" {working.action}); {new.orderType} {new.action} needs a new order"
        )
    return dataclasses.replace(
        working,
        totalQuantity=new.totalQuantity,
        lmtPrice=new.lmtPrice,
        auxPrice=new.auxPrice,
        trailingPercent=new.trailingPercent,
        tif=new.tif,
        outsideRth=new.outsideRth,
        orderRef=new.orderRef,
        transmit=True,  # a bracket's take-profit was sent held; its move must not be
    )


# -- order states ------------------------------------------------------------------------------


def _error(trade: ib_async.Trade, *, warnings: bool) -> tuple[int, str] | None:
    """The last error IB reported for an order (code, IB's own words), from ib_async's log.
    ib_async logs a warning (the order stays live) with the status ValidationError: it is no
    reason for a cancel (a held order's warning must not make its cancel a rejection). An
    error right after a modification ("Modify") refused the modification, not the order."""
    log = trade.log
    for index in range(len(log) - 1, -1, -1):
        entry = log[index]
        if index and log[index - 1].message == "Modify":
            continue
        if entry.errorCode and (warnings or entry.status != "ValidationError"):
            match = _LOGGED_ERROR.match(entry.message)
            return entry.errorCode, match["text"] if match else entry.message
    return None


def parse_status(trade: ib_async.Trade, filled: Decimal) -> tuple[OrderStatus, str | None]:
    status = STATUSES.get(trade.orderStatus.status, OrderStatus.UNKNOWN)
    error = _error(trade, warnings=False)
    message = error[1] if error else None
    if status is OrderStatus.CANCELED and error and error[0] not in CANCELED_CODES:
        return OrderStatus.REJECTED, message
    if trade.orderStatus.status == "Inactive":
        held = "inactive at IB (not working now; IB may make it active)"
        words = _error(trade, warnings=True)
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else status
        return status, f"{held}: {words[1]}" if words else held
    if status is OrderStatus.ACCEPTED and filled > 0:
        return OrderStatus.PARTIALLY_FILLED, None
    if status is OrderStatus.ACCEPTED and trade.orderStatus.status == "PreSubmitted":
        return status, "held by IB until its parent fills or its trigger is reached"
    return status, message if status in (OrderStatus.CANCELED, OrderStatus.REJECTED) else None


def trade_state(
    client_order_id: str,
    trades: Sequence[ib_async.Trade],
    fills: Iterable[ib_async.Fill],
    ticker: str | None,
) -> OrderState:
    """An order's state from IB's trades of it (a live trade beats a completed-orders copy of
    the same order) and the executions ib_async holds (`fills`: all of them; the order's are
    picked by `orderRef`, or by permId where IB left it out). `ticker`: the one the order was
    sent with, if known; otherwise read from the contract."""
    trade = next((t for t in trades if t.orderStatus.orderId), trades[-1])
    order, contract = trade.order, trade.contract
    ticker = ticker or ticker_of(contract)
    perm_ids = {t.order.permId for t in trades if t.order.permId}
    found = to_fills(
        client_order_id,
        ticker,
        (
            fill
            for fill in [*trade.fills, *fills]
            if fill.execution.orderRef == client_order_id
            or (not fill.execution.orderRef and fill.execution.permId in perm_ids)
        ),
    )
    executed = sum((f.quantity for f in found), Decimal(0))
    reported = max(
        parse_quantity(trade.orderStatus.filled),
        parse_number(order.filledQuantity) or Decimal(0),
    )
    filled = max(executed, reported)
    status, message = parse_status(trade, filled)
    average = parse_number(trade.orderStatus.avgFillPrice) or None
    average = parse_quantity(average) if average is not None else None
    if average is None and executed:
        average = sum((f.quantity * f.price for f in found), Decimal(0)) / executed
    order_type = IB_ORDER_TYPES.get(order.orderType)
    return OrderState(
        client_order_id=client_order_id,
        status=status,
        filled_quantity=filled,
        average_fill_price=average,
        broker_order_id=str(order.permId) if order.permId else None,
        message=message,
        fills=found,
        ticker=ticker,
        side=Side.BUY if order.action == "BUY" else Side.SELL,
        quantity=parse_quantity(order.totalQuantity),
        order_type=order_type,
        limit_price=parse_number(order.lmtPrice)
        if order.orderType in ("LMT", "STP LMT", "LOC")
        else None,
        stop_price=parse_number(order.auxPrice) if order.orderType in ("STP", "STP LMT") else None,
    )


def fills_state(
    client_order_id: str,
    fills: Sequence[ib_async.Fill],
    ticker: str | None,
    quantity: Decimal | None,
) -> OrderState:
    """An order IB reports executions for but no longer lists (after a restart: only in today's
    executions). Filled only when the fills cover the quantity sent, if it is known at all;
    otherwise partially filled by what they say — never filled early."""
    ticker = ticker or ticker_of(fills[0].contract)
    found = to_fills(client_order_id, ticker, fills)
    executed = sum((f.quantity for f in found), Decimal(0))
    value = sum((f.quantity * f.price for f in found), Decimal(0))
    status, message = OrderStatus.FILLED, None
    if quantity is None or executed < quantity:
        status = OrderStatus.PARTIALLY_FILLED
        message = (
            f"IB reports executions for {executed}, not the order itself: its quantity is not known"
            if quantity is None
            else f"IB reports executions for {executed} of {quantity}, not the order itself:"
            " what became of the rest is not known"
        )
    return OrderState(
        client_order_id,
        status,
        filled_quantity=executed,
        average_fill_price=value / executed if executed else None,
        broker_order_id=str(fills[0].execution.permId),
        message=message,
        fills=found,
        ticker=ticker,
        side=found[0].side,
        quantity=quantity,
    )


# -- fills -------------------------------------------------------------------------------------


def to_fills(client_order_id: str, ticker: str, fills: Iterable[ib_async.Fill]) -> tuple[Fill, ...]:
    """One fill per execution, its latest revision winning. The fill id is the execId without
    its revision: the same before and after a correction and in every replay, since the
    journal dedupes on it."""
    latest: dict[str, tuple[int, ib_async.Fill]] = {}
    for fill in fills:
        stem, revision = execution_revision(fill.execution.execId)
        if stem not in latest or revision > latest[stem][0]:
            latest[stem] = (revision, fill)
    return tuple(to_fill(client_order_id, ticker, f, stem) for stem, (_, f) in latest.items())


def to_fill(client_order_id: str, ticker: str, fill: ib_async.Fill, fill_id: str) -> Fill:
    execution = fill.execution
    return Fill(
        fill_id=fill_id,
        client_order_id=client_order_id,
        ticker=ticker,
        side=Side.BUY if execution.side == "BOT" else Side.SELL,
        quantity=parse_quantity(execution.shares),
        price=parse_quantity(execution.price),
        filled_at=execution.time if isinstance(execution.time, datetime) else fill.time,
        **commission(fill.commissionReport),
    )


def commission(report: ib_async.CommissionReport | None) -> dict[str, Any]:
    """IB's commission for an execution, when its report has arrived (it follows the execution
    and may come after the fill is journaled: then the fill's fee stays unknown). An unset
    commission is 0 or IB's UNSET_DOUBLE (1.8e308)."""
    amount = getattr(report, "commission", None)
    if not isinstance(amount, int | float) or not 0 < amount < 1e300:
        return {}
    return {"fee": parse_quantity(amount), "fee_currency": getattr(report, "currency", "") or None}


# -- positions ---------------------------------------------------------------------------------


def to_position(position: ib_async.Position) -> Position:
    """IB's position; its average cost is per contract (× multiplier), ours per unit."""
    multiplier = parse_number(position.contract.multiplier) or Decimal(1)
    average = parse_number(position.avgCost)
    return Position(
        ticker_of(position.contract),
        parse_quantity(position.position),
        average / multiplier if average is not None else None,
    )
