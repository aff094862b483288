"""Planning: intent × position × open orders × price → the ordered steps of one delivery (SPEC §6).

Pure. A business "no" is a value (`Skip` or `Reject` with a reason), never an exception: the
engine journals it and `tradepipe signals` shows it.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tradepipe.core.breakeven import breakeven
from tradepipe.core.breakeven import side_of as _side_of
from tradepipe.core.breakeven import side_word as _word
from tradepipe.core.decision import (
    Decision,
    Market,
    Plan,
    PlannedOrder,
    Reject,
    RestingStop,
    Skip,
    plan_from_json,
    plan_to_json,
    reference_price,
)
from tradepipe.core.model import OrderRole, OrderType, Side
from tradepipe.core.prices import (
    ExitLeg,
    percent_above_limit,
    round_to_tick,
    show,
    stop_limit_problem,
    stop_loss_leg,
    take_profit_leg,
    trail_problem,
)
from tradepipe.core.resolve import Intent
from tradepipe.core.risk import limit_to_caps, restrict_to_windows
from tradepipe.core.signal import Action, QuantityType, Sentiment
from tradepipe.core.sizing import SizingInputs, round_to_lot, size

# The decision values and their journal form live in core/decision.py; imported from here too.
__all__ = [
    "Decision",
    "Market",
    "Plan",
    "PlannedOrder",
    "Reject",
    "RestingStop",
    "Skip",
    "make_plan",
    "plan_from_json",
    "plan_to_json",
    "reference_price",
]


def make_plan(intent: Intent, market: Market) -> Decision:
    decision = _position_logic(intent, market)
    if isinstance(decision, Plan):
        decision = restrict_to_windows(decision, intent, market.now)
    if isinstance(decision, Plan):
        decision = limit_to_caps(decision, intent, market)
    if isinstance(decision, Plan):
        for order in decision.orders:
            for name in ("limit_price", "stop_price", "trail_amount", "trail_percent"):
                price = getattr(order, name)
                # The last guard: whatever rule above missed, a broker never sees such a price.
                if price is not None and not (price.is_finite() and price > 0):
                    return Reject(f"the {order.role} order's {name} {price} is not a price")
    return decision


def _position_logic(intent: Intent, market: Market) -> Decision:
    position = market.position
    match intent.action:
        case Action.BUY | Action.SELL:
            side = Side.BUY if intent.action is Action.BUY else Side.SELL
            return _buy_or_sell(intent, market, side)
        case Action.EXIT:
            if position == 0:
                return Reject("no open position to exit")
            if intent.ignore_exits:
                return Skip("exits are ignored (ignore_exits = true)")
            # Sentiment flat means "end flat": the quantity is ignored (TradersPost).
            return _exit(intent, market, partial=intent.sentiment is not Sentiment.FLAT)
        case Action.ADD:
            if position == 0:
                return Reject("no open position to add to")
            return _entry_plan(intent, market, _side_of(position), verb="add")
        case Action.REVERSE:
            if position == 0:
                return Reject("no open position to reverse")
            if intent.sentiment is Sentiment.FLAT:  # flat never enters the other side
                return _exit(intent, market, partial=False, note=" (sentiment flat: no entry)")
            target = _side_of(position).opposite()
            if not _side_allowed(intent, target):  # entries obey sides (SPEC §6)
                note = f" (sides = {intent.sides}: exit only)"
                return _exit(intent, market, partial=False, note=note)
            return _swap(intent, market, target)
        case Action.CANCEL:
            if not market.has_open_orders:
                return Reject(f"no open orders for {intent.ticker} to cancel")
            return Plan(f"cancel the open orders for {intent.ticker}", cancel_open_orders=True)
        case Action.BREAKEVEN:
            if position == 0:
                return Reject("no open position to move a stop to breakeven for")
            return breakeven(intent, market)
    raise AssertionError(f"unhandled action {intent.action}")  # pragma: no cover


def _buy_or_sell(intent: Intent, market: Market, side: Side) -> Decision:
    position = market.position
    holding_opposite = position * side.sign < 0
    opposite = Sentiment.BEARISH if side is Side.BUY else Sentiment.BULLISH
    if intent.sentiment is Sentiment.FLAT:
        if not holding_opposite:
            return Reject(
                f"{side} with sentiment flat: no {_word(side.opposite())} position to exit"
            )
        if intent.ignore_exits:
            return Skip("exits are ignored (ignore_exits = true)")
        return _exit(intent, market, partial=False)
    if intent.sentiment is opposite:
        if not holding_opposite:
            return Reject(
                f"{side} with sentiment {opposite}: a partial exit needs a"
                f" {_word(side.opposite())} position"
            )
        return _exit(intent, market, partial=True)
    if position == 0:
        if not _side_allowed(intent, side):
            return Skip(f"sides = {intent.sides}: a {side} does not open a {_word(side)} position")
        return _entry_plan(intent, market, side, verb="enter")
    if not holding_opposite:
        if not intent.allow_add:
            return Skip(f"already {_word(side)} {abs(position)} (allow_add = false)")
        return _entry_plan(intent, market, side, verb="add")
    if not intent.allow_side_swap:
        return _exit(intent, market, partial=False, note=" (allow_side_swap = false: exit only)")
    if not _side_allowed(intent, side):
        note = f" (sides = {intent.sides}: exit only)"
        return _exit(intent, market, partial=False, note=note)
    return _swap(intent, market, side)


def _swap(intent: Intent, market: Market, side: Side) -> Decision:
    """Exit the whole position, wait for the fill, then enter the other side."""
    held = abs(market.position)
    exit_order = _exit_order(intent, market, held)
    if isinstance(exit_order, Reject):
        return exit_order
    quantity = _entry_quantity(intent, market, side)
    if isinstance(quantity, Reject):
        return quantity
    if intent.subtract_exit_quantity:
        quantity -= held
        if quantity <= 0:
            return Plan(
                f"exit {_word(side.opposite())} {held}; no entry: the signal's quantity"
                f" {quantity + held} minus the exit {held} leaves nothing",
                (exit_order,),
                intent.cancel_open_orders and market.has_open_orders,
            )
    entry = _entry_orders(intent, market, side, quantity)
    if isinstance(entry, Reject):
        return entry
    return Plan(
        f"exit {_word(side.opposite())} {held}, wait for the fill, then {side} {quantity}"
        + _bracket_words(entry),
        (replace(exit_order, wait_for_fill=True), *entry),  # the entry waits for the exit
        intent.cancel_open_orders and market.has_open_orders,
    )


def _exit(intent: Intent, market: Market, *, partial: bool, note: str = "") -> Decision:
    held = abs(market.position)
    quantity = held
    if partial and intent.signal_quantity is not None:
        if intent.quantity_type is QuantityType.PERCENT_OF_POSITION:
            sized = size(_sizing(intent, market))
            if isinstance(sized, str):
                return Reject(f"exit quantity: {sized}")
            quantity = min(sized, held)
        else:
            quantity = min(round_to_lot(intent.signal_quantity, market.lot_size, True), held)
            if quantity <= 0:
                return Reject(f"exit quantity {intent.signal_quantity} rounds to 0")
    order = _exit_order(intent, market, quantity)
    if isinstance(order, Reject):
        return order
    what = "exit" if quantity == held else "partial exit of"
    return Plan(
        f"{what} {_word(_side_of(market.position))} {quantity} of {held}{note}",
        (order,),
        intent.cancel_open_orders and market.has_open_orders,
    )


def _entry_plan(intent: Intent, market: Market, side: Side, *, verb: str) -> Decision:
    quantity = _entry_quantity(intent, market, side)
    if isinstance(quantity, Reject):
        return quantity
    entry = _entry_orders(intent, market, side, quantity)
    if isinstance(entry, Reject):
        return entry
    return Plan(
        f"{verb} {_word(side)} {quantity} ({side} {quantity} {intent.ticker}{_worth(market)})"
        + _bracket_words(entry),
        entry,
        intent.cancel_open_orders and market.has_open_orders,
    )


_OF_EQUITY = (QuantityType.RISK_PERCENT, QuantityType.PERCENT_OF_EQUITY)


def _entry_quantity(intent: Intent, market: Market, side: Side) -> Decimal | Reject:
    if intent.quantity_type in _OF_EQUITY:
        field = f"quantity ({intent.quantity_type})"
        too_much = percent_above_limit(field, intent.quantity, market.allow_leverage)
        if too_much is not None:
            return Reject(f"entry quantity: {too_much}")
    sized = size(_sizing(intent, market, side))
    return Reject(f"entry quantity: {sized}") if isinstance(sized, str) else sized


def _sizing(intent: Intent, market: Market, side: Side | None = None) -> SizingInputs:
    price = reference_price(intent, market) or intent.limit_price
    stop = None
    if intent.stop_loss is not None and price is not None and side is not None:
        leg = stop_loss_leg(
            intent.stop_loss, side, price, market.tick_size, allow_leverage=market.allow_leverage
        )
        stop = leg.stop_price if isinstance(leg, ExitLeg) else None
    return SizingInputs(
        quantity=intent.quantity,
        quantity_type=intent.quantity_type,
        position=market.position,
        reference_price=price,
        stop_price=stop,
        equity=market.equity,
        lot_size=market.lot_size,
        fractional=intent.fractional,
        multiplier=market.multiplier,
    )


def _entry_orders(
    intent: Intent, market: Market, side: Side, quantity: Decimal
) -> tuple[PlannedOrder, ...] | Reject:
    """The entry, followed by its take-profit and stop-loss children when it has them."""
    entry = _order(
        intent, market, "entry", side, quantity, OrderRole.ENTRY, intent.entry_order_type
    )
    if isinstance(entry, Reject):
        return entry
    if intent.take_profit is None and intent.stop_loss is None:
        return (entry,)
    reference = reference_price(intent, market)
    if reference is None:
        return Reject("take-profit / stop-loss need a reference price: send signalPrice")
    children = []
    for role, leg in (
        (
            OrderRole.TAKE_PROFIT,
            intent.take_profit
            and take_profit_leg(intent.take_profit, side, reference, market.tick_size),
        ),
        (
            OrderRole.STOP_LOSS,
            intent.stop_loss
            and stop_loss_leg(
                intent.stop_loss,
                side,
                reference,
                market.tick_size,
                allow_leverage=market.allow_leverage,
            ),
        ),
    ):
        if isinstance(leg, str):
            return Reject(leg)
        if leg:
            children.append(
                PlannedOrder(
                    leg=str(role),
                    side=side.opposite(),
                    quantity=quantity,
                    role=role,
                    order_type=leg.order_type,
                    limit_price=leg.limit_price,
                    stop_price=leg.stop_price,
                    trail_amount=leg.trail_amount,
                    trail_percent=leg.trail_percent,
                    parent_leg="entry",
                )
            )
    return (entry, *children)


def _worth(market: Market) -> str:
    """ " ×50" for an instrument whose unit is worth more than one point (a future, an option)."""
    return f" ×{show(market.multiplier)}" if market.multiplier != 1 else ""


def _bracket_words(orders: tuple[PlannedOrder, ...]) -> str:
    words = []
    for order in orders:
        if order.role is OrderRole.TAKE_PROFIT:
            assert order.limit_price is not None  # a take-profit is a limit order
            words.append(f"take-profit {order.order_type} at {show(order.limit_price)}")
        elif order.role is OrderRole.STOP_LOSS:
            price = order.stop_price or order.trail_amount or order.trail_percent
            assert price is not None  # a stop-loss is a stop, stop-limit or trailing stop
            words.append(f"stop-loss {order.order_type} at {show(price)}")
    return f" with {' and '.join(words)}" if words else ""


def _exit_order(intent: Intent, market: Market, quantity: Decimal) -> PlannedOrder | Reject:
    side = _side_of(market.position).opposite()
    return _order(intent, market, "exit", side, quantity, OrderRole.EXIT, intent.exit_order_type)


def _order(
    intent: Intent,
    market: Market,
    leg: str,
    side: Side,
    quantity: Decimal,
    role: OrderRole,
    kind: OrderType,
) -> PlannedOrder | Reject:
    uses = _PRICES_OF.get(kind, ())
    if kind is OrderType.TRAILING_STOP:
        if not (intent.trail_amount or intent.trail_percent):
            return Reject(f"a trailing_stop {leg} order needs trailAmount or trailPercent")
        problem = trail_problem(
            side,
            market.reference_price,
            intent.trail_amount,
            intent.trail_percent,
            market.allow_leverage,
        )
        if problem is not None:
            return Reject(f"the trailing_stop {leg} order: {problem}")
    else:
        for name in uses:
            if getattr(intent, name) is None:
                camel = "limitPrice" if name == "limit_price" else "stopPrice"
                return Reject(f"a {kind} {leg} order needs {camel}")
    # The signal's own prices go on the tick too: buys round down, sells up (SPEC §7).
    prices: dict[str, Decimal | None] = {"limit_price": None, "stop_price": None}
    for name in prices:
        given = getattr(intent, name)
        if name in uses and given is not None:
            prices[name] = rounded = round_to_tick(given, side, market.tick_size)
            if rounded <= 0:
                camel = "limitPrice" if name == "limit_price" else "stopPrice"
                return Reject(f"{camel} {show(given)} rounds to {show(rounded)}: not a price")
    limit, stop = prices["limit_price"], prices["stop_price"]
    if kind is OrderType.STOP_LIMIT and limit is not None and stop is not None:
        problem = stop_limit_problem(side, stop, limit, f"the stop_limit {leg} order's")
        if problem is not None:
            return Reject(problem)
    return PlannedOrder(
        leg=leg,
        side=side,
        quantity=quantity,
        role=role,
        order_type=kind,
        limit_price=limit,
        stop_price=stop,
        trail_amount=intent.trail_amount if "trail_amount" in uses else None,
        trail_percent=intent.trail_percent if "trail_percent" in uses else None,
    )


# The prices each order type takes from the signal (a trailing stop needs one of its two).
_PRICES_OF: dict[OrderType, tuple[str, ...]] = {
    OrderType.LIMIT: ("limit_price",),
    OrderType.STOP: ("stop_price",),
    OrderType.STOP_LIMIT: ("stop_price", "limit_price"),
    OrderType.TRAILING_STOP: ("trail_amount", "trail_percent"),
}


def _side_allowed(intent: Intent, side: Side) -> bool:
    return intent.sides == "both" or (intent.sides == "long") == (side is Side.BUY)
