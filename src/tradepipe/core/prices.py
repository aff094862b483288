"""Prices (SPEC §7): take-profit and stop-loss from the reference price, and tick rounding.

Pure. `percent` and `amount` are offsets from the reference price (an `amount` of 100 is a price
move, not P&L): up for a long's take-profit, down for its stop, mirrored for a short. A
take-profit or stop on the wrong side of the entry is an error, never an order. Prices round to
the instrument's tick: down for buys, up for sells.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from tradepipe.core.model import OrderType, Side
from tradepipe.core.signal import StopLoss, StopLossType, TakeProfit

HUNDRED = Decimal(100)


def show(price: Decimal) -> str:
    """A price as a person writes it: 110, 94.5, 0.1234."""
    return format(price.normalize(), "f")


def stock_tick(price: Decimal) -> Decimal:
    """US equities: $0.01 at or above $1, $0.0001 below (Reg NMS sub-penny rule)."""
    return Decimal("0.01") if price >= 1 else Decimal("0.0001")


def round_to_tick(price: Decimal, side: Side, tick: Decimal | None = None) -> Decimal:
    """Down for buys, up for sells: rounding never makes a buy pay more or a sell take less."""
    tick = tick or stock_tick(price)
    rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    return (price / tick).to_integral_value(rounding=rounding) * tick


@dataclass(frozen=True, slots=True)
class ExitLeg:
    """A bracket child: the order type and prices of a take-profit or a stop-loss."""

    order_type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None


def _offset(reference: Decimal, percent: Decimal | None, amount: Decimal | None) -> Decimal:
    return reference * percent / HUNDRED if percent is not None else (amount or Decimal(0))


def percent_above_limit(field: str, percent: Decimal | None, allow_leverage: bool) -> str | None:
    """Why a percent input is refused: above 100 needs an account with leverage (SPEC §12)."""
    if percent is None or percent <= HUNDRED or allow_leverage:
        return None
    return (
        f"{field} {show(percent)} is above 100, which needs leverage"
        " (set allow_leverage = true on the account to allow it)"
    )


def _given(take_profit: TakeProfit) -> str:
    for name, value in (("percent", take_profit.percent), ("amount", take_profit.amount)):
        if value is not None:
            return f"takeProfit.{name} {show(value)}"
    return f"takeProfit.limitPrice {show(take_profit.limit_price or Decimal(0))}"


def take_profit_leg(
    take_profit: TakeProfit, entry_side: Side, reference: Decimal, tick: Decimal | None = None
) -> ExitLeg | str:
    """The take-profit of an entry, or why there can be none."""
    up = entry_side is Side.BUY
    if take_profit.limit_price is not None:
        price = take_profit.limit_price
    else:
        offset = _offset(reference, take_profit.percent, take_profit.amount)
        price = reference + offset if up else reference - offset
    price = round_to_tick(price, entry_side.opposite(), tick)
    if price <= 0:  # a short's take-profit of 150 % would be a buy limit at -50
        return (
            f"take-profit {show(price)} is not a price ({_given(take_profit)} from the entry"
            f" {show(reference)} goes to or past 0)"
        )
    if (price <= reference) if up else (price >= reference):
        word = "above" if up else "below"
        return f"take-profit {show(price)} must be {word} the entry price {show(reference)}"
    return ExitLeg(OrderType.LIMIT, limit_price=price)


def trail_problem(
    side: Side,
    reference: Decimal | None,
    trail_amount: Decimal | None,
    trail_percent: Decimal | None,
    allow_leverage: bool,
    field: str = "trail",
) -> str | None:
    """Why a trailing stop is no stop: a trail as large as the price never triggers a sell."""
    if trail_amount is not None and reference is not None and trail_amount >= reference:
        return (
            f"{field}Amount {show(trail_amount)} is not below the price {show(reference)}:"
            " a trail that large is no stop"
        )
    if trail_percent is not None and side is Side.SELL and trail_percent >= HUNDRED:
        return (
            f"{field}Percent {show(trail_percent)} must be below 100: a trail that large is no stop"
        )
    return percent_above_limit(f"{field}Percent", trail_percent, allow_leverage)


def stop_loss_leg(
    stop_loss: StopLoss,
    entry_side: Side,
    reference: Decimal,
    tick: Decimal | None = None,
    *,
    allow_leverage: bool = False,
) -> ExitLeg | str:
    """The stop-loss of an entry, or why there can be none."""
    down = entry_side is Side.BUY
    exit_side = entry_side.opposite()
    if stop_loss.type is StopLossType.TRAILING_STOP:
        problem = trail_problem(
            exit_side,
            reference,
            stop_loss.trail_amount,
            stop_loss.trail_percent,
            allow_leverage,
            "stopLoss.trail",
        )
        if problem is not None:
            return problem
        return ExitLeg(
            OrderType.TRAILING_STOP,
            trail_amount=stop_loss.trail_amount,
            trail_percent=stop_loss.trail_percent,
        )
    too_far = percent_above_limit("stopLoss.percent", stop_loss.percent, allow_leverage)
    if too_far is not None:
        return too_far
    if stop_loss.stop_price is not None:
        stop = stop_loss.stop_price
    else:
        offset = _offset(reference, stop_loss.percent, stop_loss.amount)
        stop = reference - offset if down else reference + offset
    stop = round_to_tick(stop, exit_side, tick)
    if stop <= 0:
        entry = show(reference)
        return (
            f"stop-loss {show(stop)} is not a price (the offset is larger than the entry {entry})"
        )
    if (stop >= reference) if down else (stop <= reference):
        word = "below" if down else "above"
        return f"stop-loss {show(stop)} must be {word} the entry price {show(reference)}"
    if stop_loss.type is StopLossType.STOP_LIMIT:
        assert stop_loss.limit_price is not None  # the payload and config validators insist
        limit = round_to_tick(stop_loss.limit_price, exit_side, tick)
        problem = stop_limit_problem(exit_side, stop, limit, "stop-loss")
        if problem is not None:
            return problem
        return ExitLeg(OrderType.STOP_LIMIT, limit_price=limit, stop_price=stop)
    return ExitLeg(OrderType.STOP, stop_price=stop)


def stop_limit_problem(side: Side, stop: Decimal, limit: Decimal, what: str) -> str | None:
    """Why a stop-limit could not fill once triggered: its limit must be on the fillable side
    of its stop (a sell's at or below it, a buy's at or above it)."""
    if limit <= 0:
        return f"{what} limit {show(limit)} is not a price"
    if (limit > stop) if side is Side.SELL else (limit < stop):
        word = "at or below" if side is Side.SELL else "at or above"
        return (
            f"{what} limit {show(limit)} must be {word} its stop {show(stop)}:"
            f" a {side} stop-limit with its limit beyond the stop may never fill"
        )
    return None
