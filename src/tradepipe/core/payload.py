"""The webhook payload's values: actions, sentiments, quantity types, take-profit and stop-loss,
the frozen `Signal`, and what parsing answers (`ParsedSignal` with its `FieldError`s)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tradepipe.core.model import OrderType, TimeInForce


class Action(StrEnum):
    BUY = "buy"
    SELL = "sell"
    EXIT = "exit"
    CANCEL = "cancel"
    ADD = "add"
    REVERSE = "reverse"
    BREAKEVEN = "breakeven"


class Sentiment(StrEnum):
    BULLISH = "bullish"
    BEARISH = "bearish"
    FLAT = "flat"


class QuantityType(StrEnum):
    FIXED_QUANTITY = "fixed_quantity"
    DOLLAR_AMOUNT = "dollar_amount"
    RISK_DOLLAR_AMOUNT = "risk_dollar_amount"
    RISK_PERCENT = "risk_percent"
    PERCENT_OF_EQUITY = "percent_of_equity"
    PERCENT_OF_POSITION = "percent_of_position"


class StopLossType(StrEnum):
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


@dataclass(frozen=True, slots=True)
class TakeProfit:
    limit_price: Decimal | None = None
    percent: Decimal | None = None
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StopLoss:
    type: StopLossType = StopLossType.STOP
    percent: Decimal | None = None
    amount: Decimal | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    ticker: str
    action: Action
    sentiment: Sentiment | None = None
    signal_price: Decimal | None = None
    quantity: Decimal | None = None
    quantity_type: QuantityType | None = None
    order_type: OrderType | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    time_in_force: TimeInForce | None = None
    take_profit: TakeProfit | None = None
    stop_loss: StopLoss | None = None
    extended_hours: bool | None = None
    ignore_trading_windows: bool | None = None
    cancel: bool | None = None
    time: datetime | None = None
    id: str | None = None
    passphrase: str | None = None
    extras: dict[str, Any] | None = None
    option_type: str | None = None
    intrinsic_value: str | None = None
    expiration: str | None = None
    strike_count: int | None = None
    strikes_away: int | None = None
    strike_price: Decimal | None = None
    breakeven_offset: Decimal | None = None
    delay: Decimal | None = None  # seconds
    cancel_after: Decimal | None = None  # seconds


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # path in the payload, e.g. "stopLoss.percent"; "" for the body as a whole
    message: str


@dataclass(frozen=True, slots=True)
class ParsedSignal:
    """The outcome of parsing: a signal, or every problem found; warnings either way."""

    signal: Signal | None
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.signal is not None and not self.errors
