"""The performance report (SPEC §14): round trips summed into figures per group, the realized
equity curve and its drawdown, and the execution quality of each fill.

Pure: fills, marks and the window arrive as arguments (the shell reads them from the journal).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tradepipe.core.model import Side
from tradepipe.core.round_trips import (
    LONG,
    OpenLot,
    ReportFill,
    RoundTrip,
    match_fills,
)

ZERO = Decimal(0)
BASIS_POINTS = Decimal(10_000)
# Orders whose price a signal asked for: a bracket leg's price is its own, not the signal's.
SIGNALLED_ROLES = frozenset({"entry", "exit"})
NONE_LABEL = "(none)"


class GroupBy(StrEnum):
    SUBSCRIPTION = "subscription"
    STRATEGY = "strategy"
    ACCOUNT = "account"
    TICKER = "ticker"


@dataclass(frozen=True, slots=True)
class Figures:
    """One group's performance over the window."""

    group: str
    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None  # wins / trades; None without trades
    gross_profit: Decimal  # Σ of the winning trades' net P&L
    gross_loss: Decimal  # Σ of the losing trades' net P&L, as a positive number
    profit_factor: Decimal | None  # gross_profit / gross_loss; None without a loss
    average_win: Decimal | None
    average_loss: Decimal | None  # negative
    realized: Decimal  # net of fees
    fees: Decimal
    unrealized: Decimal  # open lots at the last mark, less their opening fees
    max_drawdown: Decimal  # of this group's realized equity curve, ≥ 0
    open_quantity: Decimal  # signed: short < 0


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill of an entry or exit order, against its signal."""

    fill_id: int
    account: str
    ticker: str
    side: Side
    quantity: Decimal
    price: Decimal
    signal_price: Decimal | None
    slippage: Decimal | None  # money: (price − signal) × quantity × multiplier, + = worse
    slippage_bps: Decimal | None  # per unit, in basis points of the signal price, + = worse
    alert_latency: float | None  # seconds, the alert's `time` → received
    submit_latency: float | None  # seconds, received → order journaled for sending
    fill_latency: float | None  # seconds, received → filled


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime | None
    until: datetime | None
    by: GroupBy
    groups: tuple[Figures, ...]
    total: Figures
    round_trips: tuple[RoundTrip, ...]
    open_lots: tuple[OpenLot, ...]
    curve: tuple[tuple[datetime, Decimal], ...]  # cumulative realized P&L after each trip
    executions: tuple[Execution, ...]
    slippage_total: Decimal
    slippage_bps: Percentiles
    alert_latency: Percentiles
    submit_latency: Percentiles
    fill_latency: Percentiles
    unmarked: tuple[str, ...]  # "account ticker" of open lots with no mark (unrealized 0)


def make_report(
    fills: Iterable[ReportFill],
    marks: Mapping[tuple[str, str], Decimal],
    *,
    by: GroupBy = GroupBy.SUBSCRIPTION,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """Every fill before `until` is matched (a lot opened before `since` can close inside the
    window); the round trips closed and the fills made in [since, until) are reported. `marks`:
    the last price per (account, ticker), for what is still open."""
    before_until = [f for f in fills if until is None or f.filled_at < until]
    matched = match_fills(before_until)
    trips = tuple(t for t in matched.round_trips if _within(t.closed_at, since, until))
    lots = matched.open_lots
    label = _labeller(by)
    trips_of: dict[str, list[RoundTrip]] = {}
    lots_of: dict[str, list[OpenLot]] = {}
    for trip in trips:
        trips_of.setdefault(label(trip), []).append(trip)
    for lot in lots:
        lots_of.setdefault(label(lot), []).append(lot)
    groups = tuple(
        _figures(key, trips_of.get(key, []), lots_of.get(key, []), marks)
        for key in sorted(trips_of.keys() | lots_of.keys())
    )
    executions = tuple(execution(f) for f in before_until if _within(f.filled_at, since, None))
    signalled = [e for e in executions if e.slippage is not None]
    return Report(
        since=since,
        until=until,
        by=by,
        groups=groups,
        total=_figures("total", list(trips), list(lots), marks),
        round_trips=trips,
        open_lots=lots,
        curve=equity_curve(trips),
        executions=executions,
        slippage_total=sum((e.slippage for e in signalled if e.slippage is not None), ZERO),
        slippage_bps=percentiles(
            [float(e.slippage_bps) for e in signalled if e.slippage_bps is not None]
        ),
        alert_latency=percentiles(
            [e.alert_latency for e in executions if e.alert_latency is not None]
        ),
        submit_latency=percentiles(
            [e.submit_latency for e in executions if e.submit_latency is not None]
        ),
        fill_latency=percentiles(
            [e.fill_latency for e in executions if e.fill_latency is not None]
        ),
        unmarked=tuple(
            sorted(
                {
                    f"{lot.account} {lot.ticker}"
                    for lot in lots
                    if (lot.account, lot.ticker) not in marks
                }
            )
        ),
    )


def _within(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or moment >= since) and (until is None or moment < until)


def _labeller(by: GroupBy) -> Callable[[RoundTrip | OpenLot], str]:
    def label(item: RoundTrip | OpenLot) -> str:
        value = {
            GroupBy.SUBSCRIPTION: item.subscription,
            GroupBy.STRATEGY: item.strategy,
            GroupBy.ACCOUNT: item.account,
            GroupBy.TICKER: item.ticker,
        }[by]
        return value if value is not None else NONE_LABEL

    return label


def _figures(
    group: str,
    trips: Sequence[RoundTrip],
    lots: Sequence[OpenLot],
    marks: Mapping[tuple[str, str], Decimal],
) -> Figures:
    wins = [t.net for t in trips if t.net > 0]
    losses = [t.net for t in trips if t.net < 0]
    gross_profit = sum(wins, ZERO)
    gross_loss = -sum(losses, ZERO)
    return Figures(
        group=group,
        trades=len(trips),
        wins=len(wins),
        losses=len(losses),
        win_rate=Decimal(len(wins)) / len(trips) if trips else None,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=gross_profit / gross_loss if gross_loss else None,
        average_win=gross_profit / len(wins) if wins else None,
        average_loss=-gross_loss / len(losses) if losses else None,
        realized=sum((t.net for t in trips), ZERO),
        fees=sum((t.fees for t in trips), ZERO),
        unrealized=sum(
            (unrealized(lot, marks.get((lot.account, lot.ticker))) for lot in lots), ZERO
        ),
        max_drawdown=max_drawdown(value for _, value in equity_curve(trips)),
        open_quantity=sum(
            (lot.quantity if lot.direction == LONG else -lot.quantity for lot in lots), ZERO
        ),
    )


def unrealized(lot: OpenLot, mark: Decimal | None) -> Decimal:
    """An open lot's P&L at the mark, less its opening fee; 0 without a mark."""
    if mark is None:
        return ZERO
    move = mark - lot.price if lot.direction == LONG else lot.price - mark
    return move * lot.quantity * lot.multiplier - lot.fees


def equity_curve(trips: Iterable[RoundTrip]) -> tuple[tuple[datetime, Decimal], ...]:
    """Cumulative realized P&L after each round trip, in closing order."""
    curve: list[tuple[datetime, Decimal]] = []
    total = ZERO
    for trip in sorted(trips, key=lambda t: (t.closed_at, t.closing_order_id)):
        total += trip.net
        curve.append((trip.closed_at, total))
    return tuple(curve)


def max_drawdown(values: Iterable[Decimal], start: Decimal = ZERO) -> Decimal:
    """The largest fall from a high to a later low, ≥ 0; the curve starts at `start`."""
    peak, worst = start, ZERO
    for value in values:
        peak = max(peak, value)
        worst = max(worst, peak - value)
    return worst


def execution(fill: ReportFill) -> Execution:
    """A fill's slippage against its signal's price (entries and exits only) and its latencies."""
    slippage = bps = None
    signal_price = fill.signal_price if fill.role in SIGNALLED_ROLES else None
    if signal_price is not None and signal_price > 0:
        worse = (fill.price - signal_price) * fill.side.sign  # a buy above, a sell below
        slippage = worse * fill.quantity * fill.multiplier
        bps = worse / signal_price * BASIS_POINTS
    return Execution(
        fill_id=fill.id,
        account=fill.account,
        ticker=fill.ticker,
        side=fill.side,
        quantity=fill.quantity,
        price=fill.price,
        signal_price=signal_price,
        slippage=slippage,
        slippage_bps=bps,
        alert_latency=_seconds(fill.alert_at, fill.received_at),
        submit_latency=_seconds(fill.received_at, fill.submitted_at),
        fill_latency=_seconds(fill.received_at, fill.filled_at),
    )


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def percentiles(values: Sequence[float]) -> Percentiles:
    """p50 and p95 by nearest rank (a value that occurred, never an interpolation)."""
    ordered = sorted(values)
    if not ordered:
        return Percentiles(0, None, None)

    def rank(p: int) -> float:
        return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]

    return Percentiles(len(ordered), rank(50), rank(95))


def netted_fee(
    ticker: str, fee: Decimal | None, currency: str | None, *, is_pair: bool
) -> Decimal | None:
    """The part of a reported fee the P&L is net of, in the instrument's money. On an exchange
    (`is_pair`, a ccxt account) a fee counts when it is in the pair's quote currency (`BTC/USDT`
    or `BTCUSDT` → USDT); one in another coin (BNB, the base) cannot be converted here: None,
    left out and counted apart. Elsewhere (IB's commission is in the account's currency) the
    fee counts as it is. No fee reported: 0."""
    if fee is None:
        return ZERO
    if not is_pair or currency is None:
        return fee
    symbol = ticker.upper().split(":", 1)[0]
    quote = symbol.split("/", 1)[1] if "/" in symbol else None
    matches = currency.upper() == quote if quote else symbol.endswith(currency.upper())
    return fee if matches else None
