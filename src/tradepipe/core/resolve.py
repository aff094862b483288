"""Resolution: signal × subscription × strategy defaults × built-in defaults → one intent.

Each order parameter takes the first of: the signal's value (where the subscription lets that
signal field through), the subscription's setting, the strategy's `defaults`, the built-in
default (SPEC §5). The intent remembers where every value came from, so `signals show` can say
why a quantity is 1. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tradepipe.core.model import OrderType, TimeInForce
from tradepipe.core.options import OptionAsk
from tradepipe.core.settings import BUILTIN
from tradepipe.core.signal import (
    Action,
    QuantityType,
    Sentiment,
    Signal,
    StopLoss,
    StopLossType,
    TakeProfit,
    option_fields,
)


class Source(StrEnum):
    SIGNAL = "signal"
    SUBSCRIPTION = "subscription"
    STRATEGY = "strategy"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Provenance:
    value: Any
    source: Source
    note: str = ""

    def describe(self, key: str, subscription: str, strategy: str) -> str:
        where = {
            Source.SIGNAL: "signal",
            Source.SUBSCRIPTION: f"subscription {subscription}",
            Source.STRATEGY: f"strategy {strategy} defaults",
            Source.DEFAULT: "built-in default",
        }[self.source]
        note = f" ({self.note})" if self.note else ""
        return f"{key} {_show(self.value)} ← {where}{note}"


@dataclass(frozen=True, slots=True)
class Intent:
    """What one subscription wants done with one signal, before looking at the position."""

    action: Action
    ticker: str
    sentiment: Sentiment | None
    # The quantity the signal asked for (exits and partial exits), after the multiplier.
    signal_quantity: Decimal | None
    quantity: Decimal
    quantity_type: QuantityType
    entry_order_type: OrderType
    exit_order_type: OrderType
    time_in_force: TimeInForce
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_amount: Decimal | None
    trail_percent: Decimal | None
    signal_price: Decimal | None
    take_profit: TakeProfit | None
    stop_loss: StopLoss | None
    extended_hours: bool
    fractional: bool
    subtract_exit_quantity: bool
    sides: str
    allow_side_swap: bool
    allow_add: bool
    ignore_exits: bool
    cancel_open_orders: bool
    exit_fill_timeout: Decimal
    breakeven_offset: Decimal
    trading_windows: tuple[Any, ...]
    ignore_trading_windows: bool
    allow_exits_outside_windows: bool
    auto_submit: bool
    max_position_quantity: Decimal | None
    max_position_value: Decimal | None
    provenance: dict[str, Provenance]
    # SPEC §13: seconds the delivery waits before it is planned (the signal's `delay`), and
    # seconds its entry or exit order may rest unfilled before it is canceled.
    delay: Decimal | None = None
    cancel_after: Decimal | None = None
    # The option contract the signal asks for instead of the ticker (`optionType put`, ...).
    option_fields: tuple[str, ...] = ()
    # The same, for the chain selector (SPEC §15); None without an optionType.
    option_ask: OptionAsk | None = None

    def explain(self, subscription: str, strategy: str) -> list[str]:
        return [p.describe(k, subscription, strategy) for k, p in self.provenance.items()]


class _Settings:
    """Looks a key up through subscription → strategy defaults → built-in default."""

    def __init__(self, subscription: Any, defaults: Any) -> None:
        self._layers = ((Source.SUBSCRIPTION, subscription), (Source.STRATEGY, defaults))

    def get(self, key: str) -> Provenance:
        for source, layer in self._layers:
            value = getattr(layer, key, None) if layer is not None else None
            if value is not None:
                return Provenance(_plain(value), source)
        return Provenance(BUILTIN[key], Source.DEFAULT)


def resolve_signal(signal: Signal, subscription: Any, defaults: Any) -> Intent:
    """Resolve one signal for one subscription; `subscription` and `defaults` are Settings."""
    settings = _Settings(subscription, defaults)
    provenance: dict[str, Provenance] = {}

    def setting(key: str) -> Any:
        found = settings.get(key)
        provenance[key] = found
        return found.value

    def from_signal(key: str, signal_value: Any, allow_key: str) -> Any:
        allow = settings.get(allow_key)
        if signal_value is not None and allow.value:
            provenance[key] = Provenance(signal_value, Source.SIGNAL)
            return signal_value
        found = settings.get(key)
        if signal_value is not None:
            found = replace(found, note=f"signal's value ignored: {allow_key} = false")
        elif allow.value is False:
            found = replace(found, note=f"{allow_key} = false")
        provenance[key] = found
        return found.value

    def overridden(key: str, signal_value: Any, note: str = "") -> Any:
        """A signal field that always wins over its setting (no use_signal_* switch)."""
        if signal_value is not None:
            provenance[key] = Provenance(signal_value, Source.SIGNAL, note)
            return signal_value
        return setting(key)

    multiplier = setting("quantity_multiplier")
    use_signal_quantity = settings.get("use_signal_quantity").value
    signal_quantity: Decimal | None = None
    if signal.quantity is not None and use_signal_quantity:
        quantity_type = signal.quantity_type or QuantityType.FIXED_QUANTITY
        # The multiplier scales quantities, never a percentage of the position.
        is_relative = quantity_type is QuantityType.PERCENT_OF_POSITION
        signal_quantity = signal.quantity if is_relative else signal.quantity * multiplier
        note = f"× quantity_multiplier {_show(multiplier)}" if multiplier != 1 else ""
        provenance["quantity"] = Provenance(signal_quantity, Source.SIGNAL, note)
        provenance["quantity_type"] = Provenance(quantity_type, Source.SIGNAL)
        quantity = signal_quantity
    else:
        quantity = setting("quantity")
        quantity_type = QuantityType(setting("quantity_type"))
        if signal.quantity is not None:
            ignored = "signal's value ignored: use_signal_quantity = false"
            provenance["quantity"] = replace(provenance["quantity"], note=ignored)

    signal_order_type = signal.order_type
    entry_order_type = OrderType(
        from_signal("entry_order_type", signal_order_type, "use_signal_order_type")
    )
    exit_order_type = OrderType(
        from_signal("exit_order_type", signal_order_type, "use_signal_order_type")
    )
    time_in_force = TimeInForce(
        from_signal("time_in_force", signal.time_in_force, "use_signal_time_in_force")
    )
    take_profit = from_signal("take_profit", signal.take_profit, "use_signal_take_profit")
    stop_loss = from_signal("stop_loss", signal.stop_loss, "use_signal_stop_loss")
    cancel_after = from_signal("cancel_after", signal.cancel_after, "use_signal_cancel_after")
    # `delay` has no setting of its own: only the signal asks for one, where allowed.
    delay = None
    if signal.delay is not None:
        allowed = settings.get("use_signal_delay")
        if allowed.value:
            delay = signal.delay
            provenance["delay"] = Provenance(signal.delay, Source.SIGNAL)
        else:
            note = "signal's value ignored: use_signal_delay = false"
            provenance["delay"] = Provenance(None, allowed.source, note)

    return Intent(
        action=signal.action,
        ticker=signal.ticker,
        sentiment=signal.sentiment,
        signal_quantity=signal_quantity,
        quantity=Decimal(quantity),
        quantity_type=quantity_type,
        entry_order_type=entry_order_type,
        exit_order_type=exit_order_type,
        time_in_force=time_in_force,
        limit_price=signal.limit_price,
        stop_price=signal.stop_price,
        trail_amount=signal.trail_amount,
        trail_percent=signal.trail_percent,
        signal_price=signal.signal_price,
        take_profit=_take_profit(take_profit),
        stop_loss=_stop_loss(stop_loss),
        extended_hours=bool(signal.extended_hours),
        fractional=bool(setting("fractional")),
        subtract_exit_quantity=bool(setting("subtract_exit_quantity")),
        sides=str(setting("sides")),
        allow_side_swap=bool(setting("allow_side_swap")),
        allow_add=bool(setting("allow_add")),
        ignore_exits=bool(setting("ignore_exits")),
        # The signal's `cancel` flag forces or suppresses cancelling (TradersPost, 2025-06-07).
        cancel_open_orders=bool(overridden("cancel_open_orders", signal.cancel, "cancel flag")),
        exit_fill_timeout=Decimal(setting("exit_fill_timeout")),
        # breakevenOffset overrides TradersPost's "Exit breakeven offset" setting.
        breakeven_offset=Decimal(overridden("breakeven_offset", signal.breakeven_offset)),
        trading_windows=tuple(setting("trading_windows") or ()),
        ignore_trading_windows=bool(signal.ignore_trading_windows),
        allow_exits_outside_windows=bool(setting("allow_exits_outside_windows")),
        auto_submit=bool(setting("auto_submit")),
        max_position_quantity=setting("max_position_quantity"),
        max_position_value=setting("max_position_value"),
        provenance=provenance,
        option_fields=option_fields(signal),
        delay=Decimal(delay) if delay else None,
        cancel_after=Decimal(cancel_after) if cancel_after is not None else None,
        option_ask=_option_ask(signal),
    )


def _option_ask(signal: Signal) -> OptionAsk | None:
    if signal.option_type is None:
        return None
    return OptionAsk(
        option_type=str(signal.option_type),
        expiration=signal.expiration,
        strike_price=signal.strike_price,
        strikes_away=signal.strikes_away,
        intrinsic_value=str(signal.intrinsic_value or "otm"),
    )


def _take_profit(value: Any) -> TakeProfit | None:
    if value is None or isinstance(value, TakeProfit):
        return value
    return TakeProfit(
        limit_price=_field(value, "limit_price"),
        percent=_field(value, "percent"),
        amount=_field(value, "amount"),
    )


def _stop_loss(value: Any) -> StopLoss | None:
    if value is None or isinstance(value, StopLoss):
        return value
    kind = _field(value, "type")
    return StopLoss(
        type=StopLossType(kind) if kind is not None else StopLossType.STOP,
        percent=_field(value, "percent"),
        amount=_field(value, "amount"),
        stop_price=_field(value, "stop_price"),
        limit_price=_field(value, "limit_price"),
        trail_amount=_field(value, "trail_amount"),
        trail_percent=_field(value, "trail_percent"),
    )


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def _plain(value: Any) -> Any:
    """Config values arrive as pydantic models; the intent keeps plain data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_none=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, TakeProfit | StopLoss):
        fields = {s: getattr(value, s) for s in value.__slots__}
        return (
            "{" + ", ".join(f"{k} = {_show(v)}" for k, v in fields.items() if v is not None) + "}"
        )
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    return str(value)
