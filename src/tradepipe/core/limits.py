"""Account and subscription risk limits (SPEC §13) as pure decisions: one planned order against
the account's figures → `Allow`, `Reduce` (to what fits) or `Deny`, and the account's trips.

Pure: the figures (equity, positions, orders sent in the last minute…) and the moment are
arguments. Exits and other reductions always pass: they lower risk. A reason names the limit,
its value and the figure: `max_gross_exposure 50,000: this entry would bring it to 61,200`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from tradepipe.core.model import Side
from tradepipe.core.sizing import round_to_lot

_HUNDRED = Decimal(100)


def money(value: Decimal) -> str:
    """An amount as a reason shows it: 61,200 or 61,200.50 (thousands separated)."""
    if value == value.to_integral_value():
        return format(value.to_integral_value(), ",f")
    return format(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), ",f")


@dataclass(frozen=True, slots=True)
class Amount:
    """A limit in the account's currency, or (`is_percent`) a share of the equity at the start
    of the trading day: `"100%"` of 80,000 is 80,000."""

    value: Decimal
    is_percent: bool = False

    @classmethod
    def parse(cls, setting: str | int | Decimal) -> Amount:
        """ "2%" → 2 percent; 50000, "50000", "50,000" → 50,000. Not positive → ValueError."""
        text = str(setting).strip().replace(",", "").replace("_", "")
        is_percent = text.endswith("%")
        try:
            value = Decimal(text.removesuffix("%").strip())
        except InvalidOperation:
            raise ValueError(
                f'"{setting}" must be an amount like 50000 or a share like "2%"'
            ) from None
        if not value.is_finite() or value <= 0:
            raise ValueError(f'"{setting}" must be more than 0')
        return cls(value, is_percent)

    def resolve(self, day_start_equity: Decimal) -> Decimal:
        return day_start_equity * self.value / _HUNDRED if self.is_percent else self.value

    def describe(self, day_start_equity: Decimal) -> str:
        """ "50,000", or "2% = 2,000" when it is a share of the day's starting equity."""
        if not self.is_percent:
            return money(self.value)
        return f"{self.value.normalize():f}% = {money(self.resolve(day_start_equity))}"


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """`[accounts.NAME.risk]`; None: no such limit."""

    max_order_value: Amount | None = Amount(Decimal(100), is_percent=True)
    max_open_positions: int | None = None
    max_gross_exposure: Amount | None = None
    max_daily_loss: Amount | None = None
    max_drawdown: Amount | None = None
    max_orders_per_minute: int | None = 60


@dataclass(frozen=True, slots=True)
class SubscriptionLimits:
    """A subscription's own limits (the §5 family); None: no such limit."""

    max_trades_per_day: int | None = None
    max_consecutive_losses: int | None = None
    # Seconds after the last loss that entries stay blocked once the losses reach the limit.
    # None: blocked until the count is reset (`tradepipe resume`).
    loss_cooldown: int | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    account: AccountLimits = AccountLimits()
    subscription: SubscriptionLimits = SubscriptionLimits()


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """What the account looks like now, from its equity snapshots and positions."""

    equity: Decimal
    day_start_equity: Decimal  # at the start of the trading day (`day_starts_at`, `timezone`)
    high_water_mark: Decimal
    # Ticker → the position's value, price × quantity × multiplier (signed: short < 0).
    positions: Mapping[str, Decimal] = field(default_factory=dict)
    orders_last_minute: int = 0  # orders sent in the 60 s before now

    @property
    def gross_exposure(self) -> Decimal:
        return sum((abs(v) for v in self.positions.values()), Decimal(0))

    @property
    def open_tickers(self) -> tuple[str, ...]:
        return tuple(sorted(t for t, v in self.positions.items() if v != 0))

    @property
    def daily_loss(self) -> Decimal:
        return self.day_start_equity - self.equity

    @property
    def drawdown(self) -> Decimal:
        return self.high_water_mark - self.equity


@dataclass(frozen=True, slots=True)
class SubscriptionFigures:
    trades_today: int = 0  # entries sent since the trading day started
    consecutive_losses: int = 0  # closed trades lost in a row
    last_loss_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Figures:
    account: AccountFigures
    subscription: SubscriptionFigures = SubscriptionFigures()


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """One planned order as the limits see it."""

    ticker: str
    side: Side
    quantity: Decimal
    price: Decimal  # the reference price the order was sized at
    # True for an entry or an add (and a reversal's entry leg): it opens or grows a position.
    # False for an exit, a stop or target, a flatten: they only lower risk.
    is_entry: bool
    multiplier: Decimal = Decimal(1)
    lot_size: Decimal = Decimal(1)

    @property
    def value(self) -> Decimal:
        return abs(self.price * self.quantity * self.multiplier)


@dataclass(frozen=True, slots=True)
class Allow:
    pass


@dataclass(frozen=True, slots=True)
class Reduce:
    quantity: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class Deny:
    reason: str


LimitDecision = Allow | Reduce | Deny


def check_order(
    order: OrderCheck, figures: Figures, limits: Limits, now: datetime
) -> LimitDecision:
    """The limits' answer for one order. Denials come first (any one denies); then the
    exposure limit may reduce the entry to what fits, rounded down to the lot."""
    if not order.is_entry:
        return Allow()
    for reason in _denials(order, figures, limits, now):
        return Deny(reason)
    return _fit_exposure(order, figures.account, limits.account)


def trips(figures: AccountFigures, limits: AccountLimits) -> list[Trip]:
    """The account limits that are reached now, each with the figures that reached it."""
    start = figures.day_start_equity
    found = []
    if limits.max_daily_loss is not None:
        limit = limits.max_daily_loss.resolve(start)
        if figures.daily_loss >= limit:
            found.append(
                Trip(
                    "max_daily_loss",
                    f"max_daily_loss {limits.max_daily_loss.describe(start)}: the day's loss is"
                    f" {money(figures.daily_loss)} (equity {money(figures.equity)},"
                    f" {money(start)} at the day's start)",
                    {
                        "limit": limit,
                        "loss": figures.daily_loss,
                        "equity": figures.equity,
                        "day_start_equity": start,
                    },
                )
            )
    if limits.max_drawdown is not None:
        limit = limits.max_drawdown.resolve(start)
        if figures.drawdown >= limit:
            found.append(
                Trip(
                    "max_drawdown",
                    f"max_drawdown {limits.max_drawdown.describe(start)}: the drawdown is"
                    f" {money(figures.drawdown)} (equity {money(figures.equity)}, high-water"
                    f" mark {money(figures.high_water_mark)})",
                    {
                        "limit": limit,
                        "drawdown": figures.drawdown,
                        "equity": figures.equity,
                        "high_water_mark": figures.high_water_mark,
                    },
                )
            )
    rate = limits.max_orders_per_minute
    if rate is not None and figures.orders_last_minute >= rate:
        found.append(
            Trip(
                "max_orders_per_minute",
                f"max_orders_per_minute {rate}: {figures.orders_last_minute} orders were sent"
                " in the last minute",
                {"limit": Decimal(rate), "orders_last_minute": Decimal(figures.orders_last_minute)},
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class Trip:
    """A reached account limit: the state follows `on_trip`; a daily-loss trip ends at the
    next day's start, every other one only with `tradepipe resume` (SPEC §13)."""

    limit: str
    reason: str
    figures: Mapping[str, Decimal]  # journaled with the trip

    @property
    def ends_at_day_start(self) -> bool:
        return self.limit == "max_daily_loss"


def _denials(order: OrderCheck, figures: Figures, limits: Limits, now: datetime) -> list[str]:
    account, subscription = figures.account, figures.subscription
    mine, theirs = limits.account, limits.subscription
    start = account.day_start_equity
    reasons = []
    rate = mine.max_orders_per_minute
    if rate is not None and account.orders_last_minute + 1 > rate:
        reasons.append(
            f"max_orders_per_minute {rate}: {account.orders_last_minute} orders were sent in"
            " the last minute"
        )
    if mine.max_daily_loss is not None and account.daily_loss >= mine.max_daily_loss.resolve(start):
        reasons.append(
            f"max_daily_loss {mine.max_daily_loss.describe(start)}: the day's loss is"
            f" {money(account.daily_loss)}"
        )
    if mine.max_drawdown is not None and account.drawdown >= mine.max_drawdown.resolve(start):
        reasons.append(
            f"max_drawdown {mine.max_drawdown.describe(start)}: the drawdown is"
            f" {money(account.drawdown)}"
        )
    trades = theirs.max_trades_per_day
    if trades is not None and subscription.trades_today + 1 > trades:
        reasons.append(
            f"max_trades_per_day {trades}: {subscription.trades_today} trades today already"
        )
    cooldown = _cooling_down(subscription, theirs, now)
    if cooldown is not None:
        reasons.append(cooldown)
    opened = account.open_tickers
    most = mine.max_open_positions
    if most is not None and order.ticker not in opened and len(opened) + 1 > most:
        reasons.append(
            f"max_open_positions {most}: this entry into {order.ticker} would bring it to"
            f" {len(opened) + 1} ({', '.join(opened)} are open)"
        )
    if mine.max_order_value is not None:
        limit = mine.max_order_value.resolve(start)
        if order.value > limit:
            # A fat finger is refused whole, never quietly shrunk into a smaller mistake.
            reasons.append(
                f"max_order_value {mine.max_order_value.describe(start)}: this order is worth"
                f" {money(order.value)} ({_quantity(order.quantity)} × {money(order.price)}"
                f"{_times(order.multiplier)})"
            )
    return reasons


def _cooling_down(
    figures: SubscriptionFigures, limits: SubscriptionLimits, now: datetime
) -> str | None:
    most = limits.max_consecutive_losses
    if most is None or figures.consecutive_losses < most:
        return None
    reason = f"max_consecutive_losses {most}: {figures.consecutive_losses} losses in a row"
    if limits.loss_cooldown is None:
        return f"{reason} (entries resume with `tradepipe resume`)"
    if figures.last_loss_at is None:
        return None
    ends_at = figures.last_loss_at + timedelta(seconds=limits.loss_cooldown)
    if now >= ends_at:
        return None
    left = int((ends_at - now).total_seconds() + 0.999)
    return (
        f"{reason}; loss_cooldown {limits.loss_cooldown} s ends at"
        f" {ends_at.isoformat(timespec='seconds')} (in {left} s)"
    )


def _fit_exposure(
    order: OrderCheck, account: AccountFigures, limits: AccountLimits
) -> LimitDecision:
    if limits.max_gross_exposure is None:
        return Allow()
    start = account.day_start_equity
    limit = limits.max_gross_exposure.resolve(start)
    gross = account.gross_exposure
    # An entry adds its whole value: checked before its reversal's exit has filled, this errs
    # on the safe side.
    after = gross + order.value
    if after <= limit:
        return Allow()
    named = f"max_gross_exposure {limits.max_gross_exposure.describe(start)}"
    unit = abs(order.price * order.multiplier)
    fits = Decimal(0)
    if limit > gross and unit > 0:
        fits = min(round_to_lot((limit - gross) / unit, order.lot_size, True), order.quantity)
    said = f"{named}: this entry would bring it to {money(after)}"
    if fits <= 0:
        return Deny(f"{said} (it is at {money(gross)}: not one lot fits)")
    return Reduce(
        fits,
        f"{said}; reduced from {_quantity(order.quantity)} to {_quantity(fits)}",
    )


def _quantity(quantity: Decimal) -> str:
    return format(quantity.normalize(), "f")


def _times(multiplier: Decimal) -> str:
    return "" if multiplier == 1 else f" × {_quantity(multiplier)}"


def without_equity(limits: Limits) -> tuple[Limits, list[str]]:
    """The limits that mean something without the account's equity (no snapshot yet and the
    broker would not say), and the names of those left out: a share of the equity, the day's
    loss, the drawdown. Amounts, counts and the order rate still hold."""
    mine = limits.account
    left_out = []
    kept = {}
    for name in ("max_order_value", "max_gross_exposure", "max_daily_loss", "max_drawdown"):
        amount = getattr(mine, name)
        drop = amount is not None and (amount.is_percent or name in _FROM_EQUITY)
        kept[name] = None if drop else amount
        if drop:
            left_out.append(name)
    return replace(limits, account=replace(mine, **kept)), left_out


_FROM_EQUITY = frozenset({"max_daily_loss", "max_drawdown"})


def cooldown_ends_at(figures: SubscriptionFigures, cooldown: int | None) -> datetime | None:
    """When a `loss_cooldown` after the last loss ends (None: no cooldown, or no loss)."""
    if cooldown is None or figures.last_loss_at is None:
        return None
    return figures.last_loss_at + timedelta(seconds=cooldown)
