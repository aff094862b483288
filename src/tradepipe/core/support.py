"""What the broker can take, checked against a plan before anything is sent (SPEC §8).

An order the broker cannot take is refused with a clear reason, never silently changed: a
trailing stop is not turned into a stop, a GTC order is not sent as DAY. The one fallback is
short selling: where the broker allows none, a plan keeps its exit and drops the short entry
(a sell on a long spot position closes it), and says so. A broker without brackets gets
tradepipe's emulation, except where two exits cannot rest at once (spot exchanges reserve the
balance of each open sell): there a bracket with both legs is refused rather than left with a
take-profit and no stop.

Pure: the broker's capabilities arrive as an argument.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from tradepipe.core.decision import Decision, Plan, Reject
from tradepipe.core.model import OrderRole, OrderType, Side, TimeInForce
from tradepipe.core.resolve import Intent
from tradepipe.core.risk import without_entries


class Supports(Protocol):
    """The part of an adapter's `Capabilities` that decides what it can be sent."""

    @property
    def order_types(self) -> frozenset[OrderType]: ...

    @property
    def time_in_force(self) -> frozenset[TimeInForce]: ...

    @property
    def fractional(self) -> bool: ...

    @property
    def short_selling(self) -> bool: ...

    @property
    def brackets(self) -> bool: ...

    @property
    def concurrent_exits(self) -> bool: ...

    @property
    def options(self) -> bool: ...


def _listed(values: frozenset[OrderType] | frozenset[TimeInForce]) -> str:
    return ", ".join(sorted(str(v) for v in values))


def refuse_unsupported(intent: Intent, account: str, can: Supports) -> Reject | None:
    """Why the account cannot trade what the signal asks for at all, before anything is read.

    Option fields change *what* is traded: where the account cannot select contracts, the
    delivery is refused rather than trading the underlying (SPEC §12)."""
    if intent.option_fields and not can.options:
        return Reject(
            f'options are not supported for account "{account}" yet:'
            f" {', '.join(intent.option_fields)}; nothing was sent"
        )
    return None


def fit_to_broker(decision: Decision, intent: Intent, broker: str, can: Supports) -> Decision:
    """The plan if the broker can take all of it; its exits alone if only the short entry is
    beyond it; else a `Reject` that names what and why."""
    if not isinstance(decision, Plan) or not decision.orders:
        return decision
    if intent.time_in_force not in can.time_in_force:
        hint = ""
        if TimeInForce.GTC in can.time_in_force:  # crypto never closes: no "day"
            hint = '; set time_in_force = "gtc" in the subscription'
        return Reject(
            f"broker {broker} does not take time_in_force {intent.time_in_force}"
            f" (it takes: {_listed(can.time_in_force)}){hint}"
        )
    for order in decision.orders:
        if order.order_type not in can.order_types:
            return Reject(
                f"broker {broker} does not take {order.order_type} orders (the {order.role}"
                f" order; it takes: {_listed(can.order_types)}); nothing was sent"
            )
        if not can.fractional and order.quantity != order.quantity.to_integral_value():
            return Reject(
                f"broker {broker} takes whole quantities only (the {order.role} order is for"
                f" {order.quantity} {intent.ticker}); nothing was sent"
            )
    if not can.brackets and not can.concurrent_exits:
        for entry in decision.orders:
            children = [o for o in decision.orders if o.parent_leg == entry.leg]
            if len(children) > 1:
                return Reject(
                    f"broker {broker} holds one resting exit per position (an open sell"
                    " reserves what it sells), so a take-profit and a stop-loss cannot both"
                    " protect it: send one of them; nothing was sent"
                )
    shorts = any(
        o.role is OrderRole.ENTRY and o.side is Side.SELL and o.quantity > Decimal(0)
        for o in decision.orders
    )
    if shorts and not can.short_selling:
        return without_entries(decision, f"broker {broker} does not allow short selling")
    return decision
