"""The SPEC §5 setting tables (strategy defaults, subscription overrides): take-profit,
stop-loss and trading-window tables, and `Settings`, whose keys are `SETTING_NAMES`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from tradepipe.config.messages import _CAMEL, _did_you_mean, _fail
from tradepipe.core.model import OrderType, TimeInForce
from tradepipe.core.settings import SETTING_NAMES
from tradepipe.core.signal import QuantityType, StopLossType
from tradepipe.core.windows import Window, parse_days, parse_minutes


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid")


Positive = Annotated[Decimal, Field(gt=0)]


def _snake_keys(data: Any) -> Any:
    """Accept the payload's camelCase keys (`stopPrice`) as well as snake_case ones."""
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(_CAMEL.get(key, key))
        if name in out:
            raise _fail(f'"{name}" is given twice (as {name} and as its camelCase form)')
        out[name] = value
    return out


def _only_set(model: BaseModel, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if getattr(model, n) is not None]


class TakeProfitSetting(_Table):
    limit_price: Positive | None = None
    percent: Positive | None = None
    amount: Positive | None = None

    camel_case_keys: ClassVar[bool] = True  # `limitPrice` as the payload spells it
    _camel_keys = model_validator(mode="before")(_snake_keys)

    @model_validator(mode="after")
    def _exactly_one(self) -> TakeProfitSetting:
        given = _only_set(self, ("limit_price", "percent", "amount"))
        if len(given) != 1:
            raise _fail(
                "needs exactly one of limit_price, percent, amount"
                f" (got {', '.join(given) or 'none'})"
            )
        return self


class StopLossSetting(_Table):
    type: StopLossType = StopLossType.STOP
    percent: Positive | None = None
    amount: Positive | None = None
    stop_price: Positive | None = None
    limit_price: Positive | None = None
    trail_amount: Positive | None = None
    trail_percent: Positive | None = None

    camel_case_keys: ClassVar[bool] = True
    _camel_keys = model_validator(mode="before")(_snake_keys)

    @model_validator(mode="after")
    def _consistent(self) -> StopLossSetting:
        # The same rules as the payload's stopLoss, so a table that loads is a table that plans.
        wanted: tuple[str, ...]
        if self.type is StopLossType.TRAILING_STOP:
            wanted = ("trail_amount", "trail_percent")
            unwanted: tuple[str, ...] = ("percent", "amount", "stop_price", "limit_price")
        else:
            wanted = ("percent", "amount", "stop_price")
            unwanted = ("trail_amount", "trail_percent")
        given = _only_set(self, wanted)
        if len(given) != 1:
            raise _fail(
                f'type "{self.type}" needs exactly one of {", ".join(wanted)} '
                f"(got {', '.join(given) or 'none'})"
            )
        if extra := _only_set(self, unwanted):
            raise _fail(f'{", ".join(extra)} cannot be used with type "{self.type}"')
        if self.type is StopLossType.STOP_LIMIT and self.limit_price is None:
            raise _fail('type "stop_limit" needs limit_price')
        if self.type is StopLossType.STOP and self.limit_price is not None:
            raise _fail('limit_price needs type "stop_limit"')
        return self


def _parse_days(days: str) -> frozenset[int]:
    try:
        return parse_days(days)
    except ValueError as e:
        raise _fail(str(e)) from None


def _parse_minutes(value: str, allow_24: bool = False) -> int:
    try:
        return parse_minutes(value, allow_24)
    except ValueError as e:
        raise _fail(str(e)) from None


def _check_zone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _fail(
            f'unknown time zone "{tz}"{_did_you_mean(tz, sorted(available_timezones()))}'
        ) from None
    return tz


def _check_days(days: str) -> str:
    _parse_days(days)
    return days


def _check_clock_time(value: str) -> str:
    _parse_minutes(value)
    return value


# The validated kinds of a time table's fields, shared by trading windows, `flatten_at` and the
# risk table's trading day: one check each, one message each.
Weekdays = Annotated[str, AfterValidator(_check_days)]
ClockTime = Annotated[str, AfterValidator(_check_clock_time)]  # "HH:MM"
TimeZone = Annotated[str, AfterValidator(_check_zone)]


class TradingWindow(_Table):
    """Entry hours; start > end crosses midnight (the session belongs to its start day)."""

    days: Weekdays
    start: str
    end: str  # exclusive; "24:00" is the end of the day
    tz: TimeZone

    @field_validator("start", "end")
    @classmethod
    def _check_time(cls, value: str, info: Any) -> str:
        _parse_minutes(value, allow_24=info.field_name == "end")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TradingWindow:
        if _parse_minutes(self.start) == _parse_minutes(self.end, allow_24=True):
            raise _fail(f'start and end are both {self.start}: use end = "24:00" for a whole day')
        return self

    @property
    def weekdays(self) -> frozenset[int]:
        return parse_days(self.days)

    def is_open_at(self, moment: datetime) -> bool:
        """Whether the aware datetime `moment` falls inside this window."""
        return Window.of(self).is_open_at(moment)


class FlattenAt(_Table):
    """`flatten_at` (SPEC §13): when a subscription's orders are canceled and its positions
    closed, e.g. `{ time = "15:55", days = "mon-fri", tz = "America/New_York" }`."""

    time: ClockTime
    days: Weekdays
    tz: TimeZone

    @property
    def minutes(self) -> int:
        """Minutes after local midnight."""
        return parse_minutes(self.time)

    @property
    def weekdays(self) -> frozenset[int]:
        return parse_days(self.days)


class Settings(_Table):
    """Every §5 setting; None means "not set here": resolution falls through to the next layer."""

    quantity: Positive | None = None
    quantity_type: QuantityType | None = None
    use_signal_quantity: bool | None = None
    quantity_multiplier: Positive | None = None
    subtract_exit_quantity: bool | None = None
    fractional: bool | None = None
    entry_order_type: OrderType | None = None
    exit_order_type: OrderType | None = None
    use_signal_order_type: bool | None = None
    time_in_force: TimeInForce | None = None
    use_signal_time_in_force: bool | None = None
    take_profit: TakeProfitSetting | None = None
    stop_loss: StopLossSetting | None = None
    use_signal_take_profit: bool | None = None
    use_signal_stop_loss: bool | None = None
    sides: Literal["both", "long", "short"] | None = None
    allow_side_swap: bool | None = None
    allow_add: bool | None = None
    ignore_exits: bool | None = None
    cancel_open_orders: bool | None = None
    exit_fill_timeout: Positive | None = None
    breakeven_offset: Annotated[Decimal, Field(allow_inf_nan=False)] | None = None
    trading_windows: list[TradingWindow] | None = None
    allow_exits_outside_windows: bool | None = None
    auto_submit: bool | None = None
    max_position_quantity: Positive | None = None
    max_position_value: Positive | None = None
    max_trades_per_day: Annotated[int, Field(ge=1)] | None = None
    max_consecutive_losses: Annotated[int, Field(ge=1)] | None = None
    loss_cooldown: Annotated[int, Field(ge=1)] | None = None
    flatten_at: FlattenAt | None = None
    cancel_after: Positive | None = None
    use_signal_cancel_after: bool | None = None
    use_signal_delay: bool | None = None

    def explicit(self) -> dict[str, Any]:
        """The settings this table sets, by name (subscription-only keys excluded)."""
        return {
            name: getattr(self, name)
            for name in SETTING_NAMES
            if name in self.model_fields_set and getattr(self, name) is not None
        }


# The names are core's (SETTING_NAMES, with their built-in defaults); this table gives their types.
if tuple(Settings.model_fields) != SETTING_NAMES:  # pragma: no cover - fails at import
    raise TypeError(
        "config Settings declares other keys than core.settings.SETTING_NAMES: "
        f"{sorted(set(Settings.model_fields) ^ set(SETTING_NAMES))}"
    )
