"""core/tally.py: the running counts the risk limits read (round trips, losses in a row, entries
per day, orders in the last minute), tabled, with properties on the round trips."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.model import Side
from tradepipe.core.tally import (
    Book,
    ClosedTrade,
    DayCount,
    FillBooked,
    Losses,
    after_close,
    book_fill,
    last_minute,
)

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def fill(side: str, quantity, price, subscription="sub-a", at=T0) -> FillBooked:
    return FillBooked("paper", "AAPL", Side(side), D(quantity), D(price), at, subscription)


def replay(*fills: FillBooked) -> tuple[Book, list[ClosedTrade]]:
    book, closed = Book(), []
    for f in fills:
        book, trade = book_fill(book, f)
        if trade is not None:
            closed.append(trade)
    return book, closed


# (fills, the book after, the P&L of each closed trade, who opened each)
CASES = [
    ([fill("buy", 10, 100)], Book(D(10), D(100), "sub-a"), [], []),
    ([fill("buy", 10, 100), fill("sell", 10, 90)], Book(), [D(-100)], ["sub-a"]),
    ([fill("sell", 5, 100), fill("buy", 5, 90)], Book(), [D(50)], ["sub-a"]),
    # an add moves the average; the close realizes against it
    (
        [fill("buy", 10, 100), fill("buy", 10, 110), fill("sell", 20, 104)],
        Book(),
        [D(-20)],
        ["sub-a"],
    ),
    # partial exits add up into one trade
    (
        [fill("buy", 10, 100), fill("sell", 4, 110), fill("sell", 6, 95)],
        Book(),
        [D(40) - D(30)],
        ["sub-a"],
    ),
    # a flatten (no subscription) closes the trade of the one that opened it
    ([fill("buy", 3, 100), fill("sell", 3, 99, subscription=None)], Book(), [D(-3)], ["sub-a"]),
    # crossing zero closes one trade and opens the next, owned by the crossing fill's subscription
    (
        [fill("buy", 5, 100), fill("sell", 8, 102, subscription="sub-b")],
        Book(D(-3), D(102), "sub-b"),
        [D(10)],
        ["sub-a"],
    ),
]


@pytest.mark.parametrize(("fills", "book", "pnls", "openers"), CASES)
def test_round_trips(fills, book, pnls, openers):
    after, closed = replay(*fills)
    assert after == book
    assert [t.pnl for t in closed] == pnls
    assert [t.subscription for t in closed] == openers


@pytest.mark.parametrize(
    ("pnls", "in_a_row"),
    [
        ([-1], 1),
        ([-1, -2, -3], 3),
        ([-1, -2, 5], 0),
        ([-1, 5, -2], 1),
        ([-1, 0, -2], 1),  # a break-even ends the row
    ],
)
def test_losses_in_a_row(pnls, in_a_row):
    losses = Losses()
    for n, pnl in enumerate(pnls):
        losses = after_close(losses, ClosedTrade("s", D(pnl), T0 + timedelta(minutes=n)))
    assert losses.in_a_row == in_a_row
    assert (losses.last_loss_at is None) == (in_a_row == 0)


def test_entries_count_per_trading_day():
    today, tomorrow = T0, T0 + timedelta(days=1)
    count = DayCount().plus_one(today).plus_one(today)
    assert (count.on(today), count.on(tomorrow)) == (2, 0)
    assert count.plus_one(tomorrow) == DayCount(tomorrow, 1)


def test_orders_in_the_last_minute_forget_what_is_60_seconds_old():
    sent = deque([T0, T0 + timedelta(seconds=30), T0 + timedelta(seconds=59)])
    assert last_minute(sent, T0 + timedelta(seconds=59)) == 3
    assert last_minute(sent, T0 + timedelta(seconds=60)) == 2  # T0 is a minute old
    assert last_minute(sent, T0 + timedelta(seconds=200)) == 0
    assert not sent


_fills = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(min_value=1, max_value=20),
        st.integers(min_value=50, max_value=150),
    ),
    max_size=30,
)


@given(_fills)
def test_the_book_holds_the_sum_of_its_fills_and_realizes_what_a_cash_count_does(rows):
    """Whatever the fills, the book's quantity is their signed sum, and the closed trades' P&L
    plus the open position at its average is exactly what the cash flow says."""
    fills = [fill(side, q, p) for side, q, p in rows]
    book, closed = replay(*fills)
    signed = sum((f.quantity * f.side.sign for f in fills), D(0))
    assert book.quantity == signed
    cash = sum((-f.quantity * f.side.sign * f.price for f in fills), D(0))
    open_value = book.quantity * book.average if book.average is not None else D(0)
    realized = sum((t.pnl for t in closed), D(0)) + book.realized
    # cash + the open position at its average entry = what the closed trips made (to the
    # 28 digits of the Decimal context an average is divided in)
    assert abs(cash + open_value - realized) < D("1e-20")
