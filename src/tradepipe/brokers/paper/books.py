"""The paper broker's books without I/O: what an order needs from buying power (longs paid in
full, shorts under Reg T), what a mark fills at, where a trailing stop stands, one position out
of the rows of its spellings, and a journaled order row read as an `OrderState`.

The journaled side (reading and writing the books) is `tradepipe.brokers.paper.broker`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradepipe.core.model import (
    RESTING_ORDER,
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Side,
)
from tradepipe.core.prices import show, stock_tick

# Reg T initial margin on a short sale: 50 % of its value from buying power, on top of the sale's
# proceeds, which stay in cash as collateral (so buying power is cash − 150 % of the shorts).
SHORT_MARGIN = Decimal("0.5")

# A paper order that may still fill: live at the mark, or a bracket leg held for its entry.
WORKING = RESTING_ORDER


def buying_power_needed(
    side: Side, held: Decimal, quantity: Decimal, unit_value: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """What an order of `quantity` units worth `unit_value` each needs from buying power, what
    its closing part frees first, and how many units it opens, when `held` units are held.

    The part that closes the position (selling a long, buying to cover a short) needs nothing
    and frees buying power: a long's sale its proceeds, a cover the 50 % its short held. The
    part that opens or grows a position needs its full value for a long (no margin) and
    SHORT_MARGIN of it for a short (the proceeds stay as collateral).
    """
    signed = quantity if side is Side.BUY else -quantity
    closing = min(quantity, abs(held)) if held and (held > 0) != (signed > 0) else Decimal(0)
    opening = quantity - closing
    freed = closing * unit_value * (1 if held > 0 else SHORT_MARGIN)
    need = opening * unit_value * (1 if side is Side.BUY else SHORT_MARGIN)
    return need, freed, opening


def mark_problem(price: Decimal, tick: Decimal | None = None) -> str | None:
    """Why `price` cannot be a mark (None if it can): a finite number above 0, and at least
    one tick (US stocks: $0.0001 below $1), so that an order can trade at it."""
    if not price.is_finite() or price <= 0:
        return "must be a number greater than 0"
    tick = tick or stock_tick(price)
    if price < tick:
        return f"is below one tick ({show(tick)}): no order can trade at it"
    return None


def merged(
    rows: Iterable[tuple[Decimal, Decimal | None]],
) -> tuple[Decimal, Decimal | None]:
    """One position from the rows of its spellings: the quantities add up; the average price is
    that of the rows on the side the total is on (those rows are what is still held)."""
    held = [(quantity, average) for quantity, average in rows if quantity]
    if len(held) <= 1:
        return held[0] if held else (Decimal(0), None)
    total = sum((quantity for quantity, _ in held), Decimal(0))
    side = [(q, a) for q, a in held if a is not None and (q > 0) == (total > 0)]
    size = sum((q for q, _ in side), Decimal(0))
    if not total or not size:
        return total, None
    return total, sum((q * a for q, a in side), Decimal(0)) / size


def fill_price(
    request: OrderRequest, mark: Decimal | None, *, resting: bool = False
) -> Decimal | None:
    """The price at which an order executes against the mark now, or None if it rests.

    Marks are samples of a continuous price: a *resting* limit that a new mark crosses was
    passed on the way and fills at its limit, never at the better jump (paper results must
    not flatter); a new marketable limit fills at the better of mark and limit, as on an
    exchange. A triggered stop fills at the mark: the gap is the stop's slippage.
    """
    if mark is None:
        return None
    buy = request.side is Side.BUY
    match request.order_type:
        case OrderType.MARKET:
            return mark
        case OrderType.LIMIT:
            assert request.limit_price is not None
            crosses = mark <= request.limit_price if buy else mark >= request.limit_price
            if not crosses:
                return None
            return (
                request.limit_price if resting else (min if buy else max)(mark, request.limit_price)
            )
        case OrderType.STOP:
            assert request.stop_price is not None
            triggered = mark >= request.stop_price if buy else mark <= request.stop_price
            return mark if triggered else None
        case OrderType.STOP_LIMIT:
            assert request.stop_price is not None and request.limit_price is not None
            triggered = mark >= request.stop_price if buy else mark <= request.stop_price
            crosses = mark <= request.limit_price if buy else mark >= request.limit_price
            return mark if triggered and crosses else None
    return None


def trailing_stop_price(request: OrderRequest, best: Decimal) -> Decimal:
    """Where a trailing stop stands when the best mark since it went live is `best`."""
    sign = -1 if request.side is Side.SELL else 1  # a sell trails below the high
    if request.trail_amount is not None:
        return best + sign * request.trail_amount
    assert request.trail_percent is not None
    return best * (1 + sign * request.trail_percent / 100)


def trail_words(request: OrderRequest, best: Decimal) -> str:
    word = "high" if request.side is Side.SELL else "low"
    stop = trailing_stop_price(request, best)
    return f"trailing: stop at {stop.normalize():f} ({word} {best.normalize():f})"


def buying_power(cash: Decimal, shorts_value: Decimal) -> Decimal:
    """Cash less what the open shorts (worth `shorts_value` at the marks) hold as collateral:
    their proceeds and Reg T's 50 % on top."""
    return cash - (1 + SHORT_MARGIN) * shorts_value


def unaffordable(
    request: OrderRequest,
    price: Decimal,
    *,
    held: Decimal,
    multiplier: Decimal,
    available: Callable[[], Decimal],
) -> str | None:
    """Why buying power (`available()` before the order: asked only when the order needs
    some) cannot carry the order at `price` (None if it can): longs are paid in full, shorts
    need Reg T's 50 % initial margin (SHORT_MARGIN); closing needs nothing. One unit is worth
    price × multiplier: a future is paid in full too, not on an exchange's margin."""
    unit_value = price * multiplier
    need, freed, opening = buying_power_needed(request.side, held, request.quantity, unit_value)
    if not need:
        return None
    have = available() + freed
    if need <= have:
        return None
    worth = "" if multiplier == 1 else f" ×{show(multiplier)}"
    opens = "sells short" if request.side is Side.SELL else "buys long"
    part = "" if opening == request.quantity else f" for the {show(opening)} it {opens}"
    why = (
        "Reg T 50 % initial margin on shorts"
        if request.side is Side.SELL
        else "longs are paid in full, no margin"
    )
    return (
        f"paper broker: {request.side} {show(request.quantity)} {request.ticker} at"
        f" {show(price)}{worth} needs {need:,.2f} of buying power{part} ({why});"
        f" {have:,.2f} available"
    )


def trailed(
    request: OrderRequest, best: Decimal | None, mark: Decimal
) -> tuple[Decimal, Decimal | None]:
    """A live trailing stop meets a mark: its new best mark, and the fill price (the mark) if
    the mark falls back by its trail from there."""
    better = max if request.side is Side.SELL else min
    new_best = mark if best is None else better(best, mark)
    stop = trailing_stop_price(request, new_best)
    triggered = mark <= stop if request.side is Side.SELL else mark >= stop
    return new_best, mark if triggered else None


def order_state(
    row: Mapping[str, Any],
    fills: Iterable[Mapping[str, Any]],
    canonical: Callable[[str], str],
) -> OrderState:
    """A journaled paper order (its row and its fills' rows) as the broker answers it, its
    ticker spelled by `canonical`."""
    held = row["status"] == OrderStatus.HELD
    request = OrderRequest.from_row(json.loads(row["request"]))
    return OrderState(
        client_order_id=row["client_order_id"],
        # A held bracket leg is accepted by the broker, waiting for its entry to fill.
        status=OrderStatus.ACCEPTED if held else OrderStatus(row["status"]),
        filled_quantity=Decimal(row["filled_quantity"]),
        average_fill_price=(
            Decimal(row["average_fill_price"]) if row["average_fill_price"] else None
        ),
        broker_order_id=row["broker_order_id"],
        message="held until the entry fills" if held else row["message"],
        fills=tuple(
            Fill(
                fill_id=f["fill_id"],
                client_order_id=f["client_order_id"],
                ticker=f["ticker"],
                side=Side(f["side"]),
                quantity=Decimal(f["quantity"]),
                price=Decimal(f["price"]),
                filled_at=datetime.fromisoformat(f["filled_at"]),
            )
            for f in fills
        ),
        ticker=canonical(request.ticker),
        side=request.side,
        quantity=request.quantity,
        order_type=request.order_type,
        limit_price=request.limit_price,
        stop_price=request.stop_price,
    )
