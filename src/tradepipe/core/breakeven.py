"""Breakeven (SPEC §6): move the stops that protect a position to its average entry ± the offset.

Pure. A stop only ever moves towards the position's favour; a trailing stop is left to trail.
"""

from __future__ import annotations

from decimal import Decimal

from tradepipe.core.decision import Decision, Market, Plan, PlannedOrder, Reject, Skip
from tradepipe.core.model import OrderRole, OrderType, Side
from tradepipe.core.prices import round_to_tick, show
from tradepipe.core.resolve import Intent


def breakeven(intent: Intent, market: Market) -> Decision:
    """Move the stops that protect the position to the average entry ± the offset."""
    position, average, offset = market.position, market.average_price, intent.breakeven_offset
    if average is None:
        return Reject("the broker reports no average entry price for the position")
    long = position > 0
    held, word, side = abs(position), side_word(side_of(position)), side_of(position).opposite()
    target = round_to_tick(average + offset if long else average - offset, side, market.tick_size)
    why = f"average {show(average)}, offset {show(offset)}"
    if target <= 0:
        return Reject(f"the breakeven stop {show(target)} ({why}) is not a price")
    reference = market.reference_price
    if reference is not None and (target >= reference if long else target <= reference):
        where = "below" if long else "above"
        return Reject(
            f"the breakeven stop {show(target)} ({why}) is not {where} the market"
            f" {show(reference)}: it would fill at once"
        )
    protecting = [stop for stop in market.stops if stop.side is side]
    fixed = [s for s in protecting if s.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)]
    if not protecting:
        order = PlannedOrder(
            "breakeven", side, held, OrderRole.STOP_LOSS, OrderType.STOP, stop_price=target
        )
        return Plan(
            f"no stop protects the {word} {held}: stop at breakeven {show(target)} ({why})",
            (order,),
        )
    if not fixed:
        return Skip(
            f"only trailing stops protect the {word} {held}; breakeven leaves them to trail"
        )
    moves: list[PlannedOrder] = []
    moved_from: list[str] = []
    for stop in fixed:
        assert stop.stop_price is not None
        if stop.stop_price >= target if long else stop.stop_price <= target:
            continue  # already at breakeven or better: never move a stop backwards
        limit = stop.limit_price
        if stop.order_type is OrderType.STOP_LIMIT and limit is not None:
            limit = round_to_tick(limit + target - stop.stop_price, side, market.tick_size)
            if limit <= 0:
                return Reject(f"the breakeven stop's limit {show(limit)} ({why}) is not a price")
        moves.append(
            PlannedOrder(
                "breakeven" + (f"-{len(moves)}" if moves else ""),
                side,
                stop.quantity,
                OrderRole.STOP_LOSS,
                stop.order_type,
                limit_price=limit,
                stop_price=target,
                replaces=stop.client_order_id,
            )
        )
        moved_from.append(show(stop.stop_price))
    if not moves:
        return Skip(f"the stop already stands at or beyond breakeven {show(target)} ({why})")
    was = ", ".join(moved_from)
    return Plan(
        f"move the stop of the {word} {held} from {was} to breakeven {show(target)} ({why})",
        tuple(moves),
    )


def side_of(position: Decimal) -> Side:
    return Side.BUY if position > 0 else Side.SELL


def side_word(side: Side) -> str:
    return "long" if side is Side.BUY else "short"
