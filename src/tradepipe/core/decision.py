"""Decisions as data: what planning is given of the market, and what it answers — a `Plan` of
ordered steps, or a business "no" (`Skip`, `Reject`) with its reason — and their journal form."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

from tradepipe.core.instruments import InstrumentKind
from tradepipe.core.model import OrderRole, OrderType, Side
from tradepipe.core.prices import show

if TYPE_CHECKING:
    from tradepipe.core.resolve import Intent


@dataclass(frozen=True, slots=True)
class RestingStop:
    """A working stop order on the ticker, as the broker describes it: what breakeven moves."""

    client_order_id: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Market:
    """What planning needs to know of the account right now."""

    position: Decimal
    average_price: Decimal | None = None
    reference_price: Decimal | None = None
    equity: Decimal | None = None
    has_open_orders: bool = False
    lot_size: Decimal = Decimal(1)
    now: datetime | None = None  # for trading windows
    tick_size: Decimal | None = None  # None: the stock rule of SPEC §7
    stops: tuple[RestingStop, ...] = ()  # the ticker's working stop orders
    allow_leverage: bool = False  # the account's: percent inputs may go above 100
    # What one unit is worth per point of price (SPEC §12): money-based sizing and value caps
    # divide by price × multiplier (ES: 50, so $500 of risk over 10 points is 1 contract).
    multiplier: Decimal = Decimal(1)
    kind: InstrumentKind = InstrumentKind.STOCK


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    leg: str  # "exit" or "entry": part of the client order id
    side: Side
    quantity: Decimal
    role: OrderRole
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    # The next step starts only once this order has filled (a reversal's exit).
    wait_for_fill: bool = False
    # A bracket child names its parent's leg: it is sent with the parent, active once it fills.
    parent_leg: str | None = None
    # Takes the place of this working order (breakeven): its bracket link passes to this one.
    replaces: str | None = None
    # What the order is for when it is not the signal's ticker (SPEC §15): the option contract
    # chosen for the underlying, the dated contract a continuous future maps to.
    ticker: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    summary: str
    orders: tuple[PlannedOrder, ...] = ()
    cancel_open_orders: bool = False
    # How the instrument was chosen (SPEC §15): the option contract and the chain facts that
    # picked it, the dated contract a continuous future maps to. Journaled, shown by
    # `signals show`.
    facts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str
    facts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str
    facts: tuple[str, ...] = ()


Decision = Plan | Skip | Reject


def reference_price(intent: Intent, market: Market) -> Decimal | None:
    """The limit price of a limit entry, else the broker's quote, else the signal's price."""
    limit_entry = intent.entry_order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    return intent.limit_price if limit_entry and intent.limit_price else market.reference_price


def plan_from_json(data: dict) -> Plan:
    """A journaled plan, to resume exactly what was decided before a stop."""
    return Plan(
        summary=data["summary"],
        cancel_open_orders=data["cancel_open_orders"],
        orders=tuple(
            PlannedOrder(
                leg=o["leg"],
                side=Side(o["side"]),
                quantity=Decimal(o["quantity"]),
                role=OrderRole(o["role"]),
                order_type=OrderType(o["order_type"]),
                **{k: Decimal(o[k]) for k in _PRICES if o.get(k) is not None},
                wait_for_fill=o["wait_for_fill"],
                parent_leg=o.get("parent_leg"),
                replaces=o.get("replaces"),
                ticker=o.get("ticker"),
            )
            for o in data["orders"]
        ),
        facts=tuple(data.get("facts", ())),
    )


_PRICES = ("limit_price", "stop_price", "trail_amount", "trail_percent")
_ORDER_FIELDS = tuple(f.name for f in fields(PlannedOrder))


def plan_to_json(decision: Decision) -> dict:
    """The journal's record of a decision, as plain JSON values (Decimals as plain-notation
    strings, as `signal_to_json` spells them): what the journal stores, `replay` shows and
    `plan_from_json` reads back."""
    # Facts and an order's own ticker only where there are some: the common plan's record is
    # unchanged.
    facts = {"facts": list(decision.facts)} if decision.facts else {}
    if isinstance(decision, Plan):
        return {
            "kind": "plan",
            "summary": decision.summary,
            "cancel_open_orders": decision.cancel_open_orders,
            # Flat fields of immutable values: no deep copy needed (asdict's was a share of
            # every traded signal's cost).
            "orders": [
                {
                    f: _json_value(getattr(order, f))
                    for f in _ORDER_FIELDS
                    if f != "ticker" or order.ticker is not None
                }
                for order in decision.orders
            ],
            **facts,
        }
    kind = "skip" if isinstance(decision, Skip) else "reject"
    return {"kind": kind, "reason": decision.reason, **facts}


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return show(value)
    return value.value if isinstance(value, Enum) else value
