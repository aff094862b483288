"""The running counts the risk limits read (SPEC §13), as pure steps: a position's round trip
booked fill by fill (which subscription opened it, what it made when it closed), a
subscription's losses in a row, its entries today, and an account's orders in the last minute.

Pure: each step takes the tally and what happened, and answers the tally after it. The engine
keeps the tallies in memory (engine/risk.py) and the journal replays the same steps at start.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from tradepipe.core.model import Side

_ZERO = Decimal(0)
MINUTE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class FillBooked:
    """One fill as the recorder journaled it, with the subscription whose order it filled
    (None: an operator's flatten)."""

    account: str
    ticker: str
    side: Side
    quantity: Decimal
    price: Decimal
    at: datetime
    subscription: str | None


@dataclass(frozen=True, slots=True)
class Book:
    """One account + ticker's position as its fills built it: signed quantity, average price,
    the subscription whose entry opened it, and the P&L its partial exits realized so far."""

    quantity: Decimal = _ZERO
    average: Decimal | None = None
    opener: str | None = None
    realized: Decimal = _ZERO


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A round trip that went back to flat (or crossed it): who opened it and what it made, in
    points × quantity (the limits need its sign, which the multiplier does not change)."""

    subscription: str | None
    pnl: Decimal
    at: datetime


def book_fill(book: Book, fill: FillBooked) -> tuple[Book, ClosedTrade | None]:
    """The book after one fill, and the trade it closed, if it closed one."""
    signed = fill.quantity * fill.side.sign
    held = book.quantity
    if held == 0 or (held > 0) == (signed > 0):  # opens or adds
        total = held + signed
        average = fill.price
        if held != 0 and book.average is not None:
            average = (held * book.average + signed * fill.price) / total
        opener = book.opener if held != 0 else fill.subscription
        return replace(book, quantity=total, average=average, opener=opener), None
    closing = min(abs(signed), abs(held))
    entry = book.average if book.average is not None else fill.price
    direction = Decimal(1) if held > 0 else Decimal(-1)
    realized = book.realized + (fill.price - entry) * closing * direction
    left = held + signed
    if left * held > 0:  # a partial exit: the trip goes on
        return replace(book, quantity=left, realized=realized), None
    closed = ClosedTrade(book.opener, realized, fill.at)
    if left == 0:
        return Book(), closed
    return Book(left, fill.price, fill.subscription), closed  # crossed: a new trip opens


@dataclass(frozen=True, slots=True)
class Losses:
    """A subscription's closed trades lost in a row (a win or a break-even ends the row)."""

    in_a_row: int = 0
    last_loss_at: datetime | None = None


def after_close(losses: Losses, trade: ClosedTrade) -> Losses:
    if trade.pnl < 0:
        return Losses(losses.in_a_row + 1, trade.at)
    return Losses()


@dataclass(frozen=True, slots=True)
class DayCount:
    """Entries sent in the trading day starting at `day_start`."""

    day_start: datetime | None = None
    count: int = 0

    def on(self, day_start: datetime) -> int:
        return self.count if self.day_start == day_start else 0

    def plus_one(self, day_start: datetime) -> DayCount:
        return DayCount(day_start, self.on(day_start) + 1)


def last_minute(sent: deque[datetime], now: datetime) -> int:
    """How many of `sent` (oldest first) are within the 60 s before `now`; older ones are
    dropped from the deque (the one mutation here: the engine's own rolling window)."""
    while sent and now - sent[0] >= MINUTE:
        sent.popleft()
    return len(sent)
