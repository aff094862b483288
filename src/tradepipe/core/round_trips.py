"""Round trips: fills matched first-in first-out per subscription and ticker (SPEC §14).

Pure. Each fill either closes open lots on the other side (oldest first) or opens a lot; a fill
bigger than what is open closes it all and opens the rest on its own side (a reversal). A fill of
no subscription (an operator's flatten) closes the open lots of every subscription on its account
and ticker, oldest first, and opens whatever is left as a lot of no subscription.

One round trip is what one closing *order* closed of one subscription's lots: the fills of one
order (a broker's partial fills) make one trade, two exit orders (a partial exit, then the rest)
make two. P&L is (exit − entry) × quantity × multiplier for a long, the reverse for a short (SPEC
§12), net of fees: an opening fill's fee goes with its lot, pro rata to what each close takes of
it; a closing fill's fee pro rata to what it closed (a reversal fill's rest opens the new lot).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tradepipe.core.model import Side

LONG = "long"
SHORT = "short"


@dataclass(frozen=True, slots=True)
class ReportFill:
    """A journaled fill with what the report needs of its order and signal."""

    id: int
    order_id: int
    account: str
    ticker: str
    side: Side
    quantity: Decimal
    price: Decimal
    filled_at: datetime
    subscription: str | None = None
    strategy: str | None = None
    multiplier: Decimal = Decimal(1)
    fee: Decimal = Decimal(0)  # in the account's currency; 0 when the broker reports none
    role: str | None = None
    signal_price: Decimal | None = None
    alert_at: datetime | None = None  # the alert's `time` field: when TradingView sent it
    received_at: datetime | None = None  # when tradepipe received the signal
    submitted_at: datetime | None = None  # when the order was journaled, just before sending


@dataclass(frozen=True, slots=True)
class RoundTrip:
    subscription: str | None
    strategy: str | None
    account: str
    ticker: str
    direction: str  # LONG or SHORT
    quantity: Decimal
    entry_price: Decimal  # quantity-weighted average of the lots closed
    exit_price: Decimal
    multiplier: Decimal
    opened_at: datetime  # of the oldest lot closed
    closed_at: datetime  # of the last closing fill
    gross: Decimal  # price move × quantity × multiplier
    fees: Decimal
    closing_order_id: int

    @property
    def net(self) -> Decimal:
        return self.gross - self.fees


@dataclass(frozen=True, slots=True)
class OpenLot:
    """What is still open: a lot opened by one fill, less what closes took of it."""

    subscription: str | None
    strategy: str | None
    account: str
    ticker: str
    direction: str
    quantity: Decimal
    price: Decimal
    multiplier: Decimal
    fees: Decimal  # the part of its opening fee not yet realized
    opened_at: datetime


@dataclass(slots=True)
class _Lot:
    sequence: int
    subscription: str | None
    strategy: str | None
    side: Side
    quantity: Decimal
    price: Decimal
    fee_per_unit: Decimal
    opened_at: datetime


@dataclass(slots=True)
class _Book:
    """One account and ticker: each subscription's open lots (all on one side per subscription)."""

    lots: dict[str | None, deque[_Lot]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Matched:
    round_trips: tuple[RoundTrip, ...]
    open_lots: tuple[OpenLot, ...]


def match_fills(fills: Iterable[ReportFill]) -> Matched:
    """Every fill, in time order (ties by id), matched FIFO; the round trips in closing order."""
    books: dict[tuple[str, str], _Book] = {}
    multipliers: dict[tuple[str, str], Decimal] = {}
    trips: list[RoundTrip] = []
    sequence = 0
    for fill in sorted(fills, key=lambda f: (f.filled_at, f.id)):
        if fill.quantity <= 0:
            continue
        key = (fill.account, fill.ticker)
        book = books.setdefault(key, _Book())
        multipliers[key] = fill.multiplier
        fee_per_unit = fill.fee / fill.quantity
        remaining = fill.quantity
        while remaining > 0:
            lot = _oldest_opposite(book, fill)
            if lot is None:
                break
            taken = min(remaining, lot.quantity)
            trips.append(_close(fill, lot, taken, fee_per_unit))
            lot.quantity -= taken
            remaining -= taken
            if lot.quantity == 0:
                book.lots[lot.subscription].popleft()
        if remaining > 0:
            sequence += 1
            opened = _Lot(
                sequence,
                fill.subscription,
                fill.strategy,
                fill.side,
                remaining,
                fill.price,
                fee_per_unit,
                fill.filled_at,
            )
            book.lots.setdefault(fill.subscription, deque()).append(opened)
    open_lots = tuple(
        OpenLot(
            lot.subscription,
            lot.strategy,
            account,
            ticker,
            LONG if lot.side is Side.BUY else SHORT,
            lot.quantity,
            lot.price,
            multipliers[(account, ticker)],
            lot.fee_per_unit * lot.quantity,
            lot.opened_at,
        )
        for (account, ticker), book in books.items()
        for lots in book.lots.values()
        for lot in lots
    )
    return Matched(_merge_by_order(trips), open_lots)


def _oldest_opposite(book: _Book, fill: ReportFill) -> _Lot | None:
    """The lot this fill closes first: its subscription's oldest on the other side; for a fill
    of no subscription, the oldest on the other side of any subscription."""
    if fill.subscription is not None:
        lots = book.lots.get(fill.subscription)
        return lots[0] if lots and lots[0].side is not fill.side else None
    heads = [q[0] for q in book.lots.values() if q and q[0].side is not fill.side]
    return min(heads, key=lambda lot: lot.sequence, default=None)


def _close(fill: ReportFill, lot: _Lot, quantity: Decimal, fee_per_unit: Decimal) -> RoundTrip:
    move = fill.price - lot.price if lot.side is Side.BUY else lot.price - fill.price
    return RoundTrip(
        subscription=lot.subscription,
        strategy=lot.strategy,
        account=fill.account,
        ticker=fill.ticker,
        direction=LONG if lot.side is Side.BUY else SHORT,
        quantity=quantity,
        entry_price=lot.price,
        exit_price=fill.price,
        multiplier=fill.multiplier,
        opened_at=lot.opened_at,
        closed_at=fill.filled_at,
        gross=move * quantity * fill.multiplier,
        fees=(lot.fee_per_unit + fee_per_unit) * quantity,
        closing_order_id=fill.order_id,
    )


def _merge_by_order(trips: list[RoundTrip]) -> tuple[RoundTrip, ...]:
    """The pieces one closing order closed of one subscription's lots, as one round trip."""
    merged: dict[tuple[int, str | None, str], RoundTrip] = {}
    for trip in trips:
        key = (trip.closing_order_id, trip.subscription, trip.direction)
        before = merged.get(key)
        if before is None:
            merged[key] = trip
            continue
        quantity = before.quantity + trip.quantity
        merged[key] = RoundTrip(
            subscription=before.subscription,
            strategy=before.strategy,
            account=before.account,
            ticker=before.ticker,
            direction=before.direction,
            quantity=quantity,
            entry_price=_average(before.entry_price, before.quantity, trip.entry_price, trip),
            exit_price=_average(before.exit_price, before.quantity, trip.exit_price, trip),
            multiplier=before.multiplier,
            opened_at=min(before.opened_at, trip.opened_at),
            closed_at=max(before.closed_at, trip.closed_at),
            gross=before.gross + trip.gross,
            fees=before.fees + trip.fees,
            closing_order_id=before.closing_order_id,
        )
    return tuple(sorted(merged.values(), key=lambda t: (t.closed_at, t.closing_order_id)))


def _average(a: Decimal, a_quantity: Decimal, b: Decimal, piece: RoundTrip) -> Decimal:
    return (a * a_quantity + b * piece.quantity) / (a_quantity + piece.quantity)
