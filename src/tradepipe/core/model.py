"""The vocabulary, once: sides, order types, the statuses of orders, deliveries and signals
with their sets, and the order value types shared by planning, brokers, the journal and the CLI.

A status is a StrEnum, so a member equals the string the journal stores (`"submitted"`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    OPG = "opg"
    CLS = "cls"
    IOC = "ioc"
    FOK = "fok"


class OrderRole(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"


class OrderStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    PLANNED = "planned"
    SUBMITTING = "submitting"
    # A bracket child tradepipe keeps until its entry fills (emulated bracket, SPEC §8).
    HELD = "held"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def is_open(self) -> bool:
        return self in OPEN_ORDER

    @property
    def is_final(self) -> bool:
        return self in FINAL_ORDER


# At the broker (or on its way there) and not finished.
OPEN_ORDER = frozenset(
    {
        OrderStatus.SUBMITTING,
        OrderStatus.SUBMITTED,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
    }
)
# Done with: the broker should no longer list it as open.
FINAL_ORDER = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)
# Working at the broker: it should list the order as open, and it may still fill.
WORKING_ORDER = frozenset(
    {OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED}
)

# Not done with: working, on its way, held until its entry fills, or of unknown state.
LIVE_ORDER = WORKING_ORDER | {OrderStatus.HELD, OrderStatus.SUBMITTING, OrderStatus.UNKNOWN}
# Resting in the paper broker's books: it may still fill (a held bracket leg once its entry
# fills). The paper broker answers at once, so its orders are never submitted-not-accepted.
RESTING_ORDER = frozenset({OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.HELD})


class DeliveryStatus(StrEnum):
    """Where one subscription's handling of one signal stands (the journal's deliveries)."""

    QUEUED = "queued"
    # The operator approved a pending delivery; in memory only, never stored.
    APPROVED = "approved"
    PLANNED = "planned"
    PENDING_APPROVAL = "pending_approval"
    # The signal's `delay` postpones it: the scheduler carries it out at its time (SPEC §13).
    DELAYED = "delayed"
    SUBMITTED = "submitted"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in FINAL_DELIVERY


# Nothing more happens to the delivery in its lane: it is done, waits for the operator's approval,
# or waits for its time (a delayed one: the scheduler queues it in its lane then).
FINAL_DELIVERY = frozenset(
    {
        DeliveryStatus.SUBMITTED,
        DeliveryStatus.SKIPPED,
        DeliveryStatus.REJECTED,
        DeliveryStatus.FAILED,
        DeliveryStatus.PENDING_APPROVAL,
        DeliveryStatus.DELAYED,
    }
)


class SignalStatus(StrEnum):
    """A received signal's status (SPEC §10): what `signals --status` takes, in the order its
    help and its error message list them."""

    ACCEPTED = "accepted"
    PROCESSED = "processed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


# The webhook's answer is final: every delivery of the signal is done, or it was refused.
FINISHED_SIGNAL = frozenset({SignalStatus.PROCESSED, SignalStatus.REJECTED})


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What tradepipe asks a broker to do: one order, identified by our client order id."""

    client_order_id: str
    account: str
    ticker: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    role: OrderRole = OrderRole.ENTRY
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    extended_hours: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any], **overrides: Any) -> OrderRequest:
        """An order request from its stored form (a journal row, the paper broker's JSON):
        text back to Decimals and enums; columns that are not fields are ignored."""
        values = {name: row[name] for name in cls.__slots__ if row.get(name) is not None}
        for name in _DECIMALS:
            if name in values:
                values[name] = Decimal(values[name])
        for name, kind in _ENUMS.items():
            if name in values:
                values[name] = kind(values[name])
        if "extended_hours" in values:
            values["extended_hours"] = bool(values["extended_hours"])
        return cls(**(values | overrides))


_DECIMALS = ("quantity", "limit_price", "stop_price", "trail_amount", "trail_percent")
_ENUMS = {"side": Side, "order_type": OrderType, "time_in_force": TimeInForce, "role": OrderRole}


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution reported by a broker."""

    fill_id: str
    client_order_id: str
    ticker: str
    side: Side
    quantity: Decimal
    price: Decimal
    filled_at: datetime
    # The fee or commission the broker charged for it, when it says (ccxt's trade `fee`, IB's
    # commission report); None: not reported (Alpaca's and the paper broker's fills).
    fee: Decimal | None = None
    fee_currency: str | None = None


@dataclass(frozen=True, slots=True)
class OrderState:
    """The broker's answer about one order: status, filled quantity, and why in its own words."""

    client_order_id: str
    status: OrderStatus
    filled_quantity: Decimal = Decimal(0)
    average_fill_price: Decimal | None = None
    broker_order_id: str | None = None
    message: str | None = None
    fills: tuple[Fill, ...] = ()
    # What the order is, as the broker describes it (open orders, reconciliation, breakeven).
    ticker: str | None = None
    side: Side | None = None
    quantity: Decimal | None = None
    order_type: OrderType | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None

    def against(self, quantity: Decimal) -> OrderState:
        """This answer read against the quantity we sent: fills that cover it mean the order
        is filled, even from a broker that no longer says so (IB, after a restart, may only
        list today's executions of an order it has forgotten)."""
        if self.status is OrderStatus.PARTIALLY_FILLED and self.filled_quantity >= quantity > 0:
            return replace(self, status=OrderStatus.FILLED)
        return self


@dataclass(frozen=True, slots=True)
class Position:
    ticker: str
    quantity: Decimal
    average_price: Decimal | None = None
