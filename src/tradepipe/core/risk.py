"""Risk limits applied to a plan: trading windows and position caps (SPEC §5).

Pure. Each takes the plan that position logic made and narrows it: an entry outside every
window is dropped (exits may go on, if `allow_exits_outside_windows`), an entry that would take
the position past `max_position_quantity` / `max_position_value` is reduced to what fits, or
rejected when nothing fits; the plan's summary says which. A position's value is price ×
quantity × multiplier (SPEC §12).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tradepipe.core.decision import Decision, Market, Plan, Reject, Skip, reference_price
from tradepipe.core.model import OrderRole
from tradepipe.core.sizing import round_to_lot
from tradepipe.core.windows import Window, outside_windows

if TYPE_CHECKING:
    from tradepipe.core.resolve import Intent


def restrict_to_windows(plan: Plan, intent: Intent, now: datetime | None) -> Decision:
    if not intent.trading_windows or intent.ignore_trading_windows:
        return plan
    if now is None:
        return Skip("trading windows are set but the engine gave no time to check them against")
    reason = outside_windows((Window.of(w) for w in intent.trading_windows), now)
    if reason is None:
        return plan
    if not intent.allow_exits_outside_windows:
        return Skip(f"{reason} (allow_exits_outside_windows = false)")
    # Exits and cancels may run outside the windows; entries (and their children) may not.
    return without_entries(plan, reason, nothing_left=Skip)


def limit_to_caps(plan: Plan, intent: Intent, market: Market) -> Decision:
    if not any(o.role is OrderRole.ENTRY for o in plan.orders):
        return plan  # caps limit what is added; exits, cancels and stop moves always go
    caps: list[tuple[Decimal, str]] = []
    if intent.max_position_quantity is not None:
        caps.append((Decimal(intent.max_position_quantity), "max_position_quantity"))
    if intent.max_position_value is not None:
        price = reference_price(intent, market)  # the price the entry was sized at
        if price is None:
            return Reject("max_position_value needs a reference price: send signalPrice")
        value = Decimal(intent.max_position_value)
        # A unit is worth price × multiplier (SPEC §12): one ES contract at 5000 is 250,000.
        unit_value = price * market.multiplier
        as_quantity = round_to_lot(value / unit_value, market.lot_size, True)
        worth = f" ×{market.multiplier.normalize():f}" if market.multiplier != 1 else ""
        caps.append(
            (as_quantity, f"max_position_value {intent.max_position_value} at {price}{worth}")
        )
    if not caps:
        return plan
    cap, which = min(caps, key=lambda c: c[0])
    position = market.position
    orders = []
    notes = []
    resized: dict[str, Decimal | None] = {}  # entry leg → its new quantity (None: dropped)
    for order in plan.orders:
        if order.parent_leg is not None:  # a bracket child follows its entry
            if order.parent_leg in resized:
                quantity = resized[order.parent_leg]
                if quantity is not None:
                    orders.append(replace(order, quantity=quantity))
            else:
                orders.append(order)
            continue
        if order.role is not OrderRole.ENTRY:
            position += order.quantity * order.side.sign
            orders.append(order)
            continue
        held = position * order.side.sign  # > 0 when the entry adds to what is held
        room = cap - max(held, Decimal(0))
        allowed = Decimal(0)
        if room > 0:
            allowed = min(order.quantity, round_to_lot(room, market.lot_size, True))
        if allowed <= 0:
            notes.append(f"entry of {order.quantity} rejected: the position is at {which} {cap}")
            resized[order.leg] = None
            continue
        if allowed < order.quantity:
            notes.append(f"entry reduced from {order.quantity} to {allowed} by {which} {cap}")
            order = replace(order, quantity=allowed)
            resized[order.leg] = allowed
        position += order.quantity * order.side.sign
        orders.append(order)
    if not notes:
        return plan
    if not orders and not plan.cancel_open_orders:
        return Reject("; ".join(notes))
    if not any(o.role is OrderRole.ENTRY for o in orders):  # nothing waits for the exit now
        orders = [replace(o, wait_for_fill=False) for o in orders]
    return replace(plan, orders=tuple(orders), summary=f"{plan.summary}; {'; '.join(notes)}")


def without_entries(
    plan: Plan, reason: str, *, nothing_left: type[Skip | Reject] | None = None
) -> Decision:
    """The plan's exits and cancels only: its entries (and their bracket children) go. With
    nothing left the answer is `nothing_left(reason)` (a Reject unless said otherwise)."""
    if not any(o.role is OrderRole.ENTRY for o in plan.orders):
        return plan
    kept = tuple(
        replace(o, wait_for_fill=False)
        for o in plan.orders
        if o.role is not OrderRole.ENTRY and not o.parent_leg
    )
    if not kept and not plan.cancel_open_orders:
        return (nothing_left or Reject)(reason)
    return replace(plan, orders=kept, summary=f"{plan.summary}; entry dropped: {reason}")


def resize_entry(plan: Plan, leg: str, quantity: Decimal) -> Plan:
    """The plan with the entry `leg` and its bracket legs at `quantity` (a risk limit's reduce)."""
    orders = tuple(
        replace(o, quantity=quantity) if o.leg == leg or o.parent_leg == leg else o
        for o in plan.orders
    )
    return replace(plan, orders=orders)
