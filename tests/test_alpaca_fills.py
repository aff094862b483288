"""Fills out of Alpaca's cumulative quantities (tradepipe.brokers.alpaca.fills): the same fills,
with the same ids, whether they are learned from stream events or from REST answers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradepipe.brokers.alpaca.fills import FillBook
from tradepipe.core.model import Side

D = Decimal
AT = datetime(2024, 5, 1, 13, 30, tzinfo=UTC)


def reached(steps: list[tuple[str, str | None]]) -> list[tuple[str, Decimal, Decimal]]:
    """(cumulative, average) answers one after another → (fill id, quantity, price)."""
    book = FillBook()
    for cumulative, average in steps:
        book.reach("A1", "s1-entry", "AAPL", Side.BUY, D(cumulative), decimal(average), AT)
    return [(f.fill_id, f.quantity, f.price) for f in book.fills]


def decimal(text: str | None) -> Decimal | None:
    return None if text is None else D(text)


@pytest.mark.parametrize(
    ("steps", "fills"),
    [
        # The id's checkpoint is `Decimal.normalize()`'s text: 10 is "1E+1". Journals dedupe on
        # these ids, so the form stays as it is.
        ([("10", "100")], [("A1:1E+1", D(10), D(100))]),
        # 4 at 100, then 10 in all at 101.2: the other 6 were at 102
        ([("4", "100"), ("10", "101.2")], [("A1:4", D(4), D(100)), ("A1:1E+1", D(6), D(102))]),
        ([("4", "100"), ("4", "100")], [("A1:4", D(4), D(100))]),  # the same answer twice
        ([("4", "100"), ("3", "100")], [("A1:4", D(4), D(100))]),  # an older answer
        ([("4", None)], []),  # no average price: nothing to book yet
        ([("0.5", "3.1")], [("A1:0.5", D("0.5"), D("3.1"))]),
        # prices are kept to 9 decimals: 3 at 1/3 … is 1 in all
        ([("1", "1"), ("3", "0.6666666666")], [("A1:1", D(1), D(1)), ("A1:3", D(2), D("0.5"))]),
    ],
)
def test_reach_books_what_is_new_at_the_price_that_makes_the_average(steps, fills):
    assert reached(steps) == fills


def test_a_fill_event_after_a_gap_books_the_hidden_fills_before_it():
    """The stream missed the first 6 (at 100): the event for 4 more at 105 (10 in all at 102)
    books 6 at 100, then 4 at 105; a REST answer for the same order later books nothing new."""
    book = FillBook()
    book.learn_event(
        "A1",
        "s1-entry",
        "AAPL",
        Side.BUY,
        cumulative=D(10),
        quantity=D(4),
        price=D(105),
        average=D(102),
        at=AT,
    )
    assert [(f.fill_id, f.quantity, f.price) for f in book.fills] == [
        ("A1:6", D(6), D(100)),
        ("A1:1E+1", D(4), D(105)),
    ]
    book.reach("A1", "s1-entry", "AAPL", Side.BUY, D(10), D(102), AT)
    assert len(book.fills) == 2 and (book.filled, book.cost) == (D(10), D(1020))


def test_fill_events_in_order_book_each_at_its_own_price():
    book = FillBook()
    for cumulative, quantity, price, average in [(3, 3, "50", "50"), (5, 2, "53", "51.2")]:
        book.learn_event(
            "A2",
            "s2-exit",
            "ETH/USD",
            Side.SELL,
            cumulative=D(cumulative),
            quantity=D(quantity),
            price=D(price),
            average=D(average),
            at=AT,
        )
    assert [(f.fill_id, f.quantity, f.price, f.side) for f in book.fills] == [
        ("A2:3", D(3), D(50), Side.SELL),
        ("A2:5", D(2), D(53), Side.SELL),
    ]
