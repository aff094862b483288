"""The journal's fills add up to what the broker says was filled: never a share twice, none
missed — whichever way a broker reports them (SPEC §8)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.fills import fills_to_journal
from tradepipe.core.model import Fill, OrderState, OrderStatus, Side

D = Decimal
T = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def fill(fill_id: str, quantity: str, price: str) -> Fill:
    return Fill(fill_id, "c1", "AAPL", Side.BUY, D(quantity), D(price), T)


def state(filled: str, average: str | None, *fills: Fill) -> OrderState:
    return OrderState(
        "c1",
        OrderStatus.FILLED if D(filled) == 10 else OrderStatus.PARTIALLY_FILLED,
        filled_quantity=D(filled),
        average_fill_price=D(average) if average else None,
        fills=fills,
    )


def added(s: OrderState, journaled=()) -> list[tuple[str, str, str]]:
    return [
        (f.fill_id, str(f.quantity), str(f.price))
        for f in fills_to_journal(s, journaled, Side.BUY, "AAPL", T)
    ]


# (id, broker's answer, journaled (id, qty, price), fills to add)
CASES = [
    ("new-fills-are-taken", state("10", "100", fill("a", "10", "100")), [], [("a", "10", "100")]),
    (
        "a-repeated-fill-is-skipped",
        state("10", "100", fill("a", "10", "100")),
        [("a", D(10), D(100))],
        [],
    ),
    (
        "a-cumulative-answer-without-fills-adds-the-missing-part",
        state("10", "101", fill("a", "4", "99.5")),
        [("a", D(4), D("99.5"))],
        [("c1:10", "6", "102")],
    ),
    (
        "after-a-restart-rest-reports-the-whole-quantity-again",
        # stream: 5 journaled as "x:5"; after the restart REST says "x:10" for all 10
        state("10", "100", fill("x:10", "10", "100")),
        [("x:5", D(5), D(100))],
        [("x:10", "5", "100")],
    ),
    (
        "a-poll-said-filled-before-the-stream-told-the-fill",
        state("10", "100", fill("exec-1", "10", "100")),
        [("c1:10", D(10), D(100))],
        [],
    ),
    ("no-average-no-made-up-price", state("10", None), [], []),
    ("nothing-filled", state("0", None), [], []),
]


@pytest.mark.parametrize(
    ("answer", "journaled", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_fills_to_journal(answer, journaled, expected):
    assert added(answer, journaled) == expected


quantities = st.decimals(min_value=D("0.01"), max_value=D(50), places=2)


@given(
    reported=st.lists(st.tuples(st.sampled_from("abcdef"), quantities), max_size=6),
    journaled=st.lists(st.tuples(st.sampled_from("abcxyz"), quantities), max_size=4),
    filled=quantities,
)
def test_the_journal_never_holds_more_than_the_broker_filled(reported, journaled, filled):
    answer = OrderState(
        "c1",
        OrderStatus.PARTIALLY_FILLED,
        filled_quantity=filled,
        average_fill_price=D(100),
        fills=tuple(fill(i, str(q), "100") for i, q in reported),
    )
    before = {}
    for fill_id, quantity in journaled:
        before.setdefault(fill_id, quantity)
    already = [(i, q, D(100)) for i, q in before.items()]
    new = fills_to_journal(answer, already, Side.BUY, "AAPL", T)
    total_before = sum(before.values(), D(0))
    total = total_before + sum((f.quantity for f in new), D(0))
    assert all(f.quantity > 0 for f in new)
    assert not {f.fill_id for f in new} & set(before)
    if total_before <= filled:
        assert total == filled  # nothing missed, nothing twice
    else:
        assert new == []  # the journal is ahead: a late, older answer adds nothing


def test_a_fill_cut_to_the_rest_keeps_its_share_of_the_fee():
    at = datetime(2026, 12, 1, tzinfo=UTC)
    reported = Fill("f2", "c", "X", Side.BUY, Decimal(10), Decimal(5), at, Decimal(2), "USD")
    state = OrderState("c", OrderStatus.FILLED, Decimal(14), Decimal(5), fills=(reported,))
    (added,) = fills_to_journal(state, [("f1", Decimal(10), Decimal(5))], Side.BUY, "X", at)
    assert added == replace(reported, quantity=Decimal(4), fee=Decimal("0.8"))
