"""Position logic for options per underlying (SPEC §15): the table of core/option_positions.py,
and the property that no decision ever sells an option that is not held."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.decision import Reject, Skip
from tradepipe.core.option_positions import Held, Occ, OptionMoves, option_moves, parse_occ
from tradepipe.core.options import OptionRight
from tradepipe.core.signal import Action, Sentiment

D = Decimal
CALL = Held("SPY 261218C00605000", OptionRight.CALL, D(2))
CALL2 = Held("SPY 270115C00610000", OptionRight.CALL, D(1))
PUT = Held("SPY 261218P00595000", OptionRight.PUT, D(3))
C, P = OptionRight.CALL, OptionRight.PUT

# (action, optionType, held, allow_add) → (closes, right bought) or the Skip/Reject type and
# words of its reason.
TABLE = [
    # buy
    ("buy-both-flat", Action.BUY, "both", (), False, ((), C)),
    ("buy-both-put-held", Action.BUY, "both", (PUT,), False, ((PUT,), C)),
    ("buy-both-call-held", Action.BUY, "both", (CALL,), False, (Skip, "already long 2 SPY")),
    ("buy-both-call-held-add", Action.BUY, "both", (CALL,), True, ((), C)),
    ("buy-call", Action.BUY, "call", (), False, ((), C)),
    ("buy-call-keeps-the-put", Action.BUY, "call", (PUT,), False, ((), C)),
    ("buy-put-is-bearish-no-invert", Action.BUY, "put", (), False, ((), P)),
    ("buy-put-held", Action.BUY, "put", (PUT,), False, (Skip, "allow_add = false")),
    # sell
    ("sell-both-flat", Action.SELL, "both", (), False, ((), P)),
    ("sell-both-call-held", Action.SELL, "both", (CALL, CALL2), False, ((CALL, CALL2), P)),
    ("sell-both-put-held", Action.SELL, "both", (PUT,), False, (Skip, "already long 3")),
    ("sell-call-closes", Action.SELL, "call", (CALL, PUT), False, ((CALL,), None)),
    ("sell-call-nothing", Action.SELL, "call", (PUT,), False, (Skip, "never sold short")),
    ("sell-put-closes", Action.SELL, "put", (PUT,), False, ((PUT,), None)),
    ("sell-put-nothing", Action.SELL, "put", (), False, (Skip, "no put of SPY is held")),
    # exit
    ("exit-both", Action.EXIT, "both", (CALL, PUT), False, ((CALL, PUT), None)),
    ("exit-call", Action.EXIT, "call", (CALL, PUT), False, ((CALL,), None)),
    ("exit-put", Action.EXIT, "put", (CALL, PUT), False, ((PUT,), None)),
    ("exit-nothing", Action.EXIT, "both", (), False, (Reject, "no open option position")),
    ("exit-put-nothing", Action.EXIT, "put", (CALL,), False, (Reject, "no open put position")),
    # reverse
    ("reverse-call", Action.REVERSE, "both", (CALL,), False, ((CALL,), P)),
    ("reverse-put", Action.REVERSE, "both", (PUT,), False, ((PUT,), C)),
    ("reverse-nothing", Action.REVERSE, "both", (), False, (Reject, "to reverse")),
    ("reverse-both-held", Action.REVERSE, "both", (CALL, PUT), False, (Reject, "exit first")),
    ("reverse-call-type", Action.REVERSE, "call", (CALL,), False, (Reject, "optionType both")),
    # add
    ("add-both-call", Action.ADD, "both", (CALL,), False, ((), C)),
    ("add-put", Action.ADD, "put", (PUT,), False, ((), P)),
    ("add-nothing", Action.ADD, "call", (PUT,), False, (Reject, "no open call position")),
    # not for options
    ("cancel", Action.CANCEL, "both", (CALL,), False, (Reject, "not supported")),
    ("breakeven", Action.BREAKEVEN, "call", (CALL,), False, (Reject, "not supported")),
]


@pytest.mark.parametrize(
    ("action", "option_type", "held", "allow_add", "wanted"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_option_position_logic(action, option_type, held, allow_add, wanted):
    got = option_moves(action, option_type, held, allow_add=allow_add, underlying="SPY")
    if isinstance(wanted[0], type):
        kind, words = wanted
        assert isinstance(got, kind), got
        assert words in got.reason
    else:
        assert isinstance(got, OptionMoves), got
        assert (got.closes, got.open_right) == wanted


def test_sentiment_flat_closes_and_never_enters():
    got = option_moves(Action.BUY, "both", (PUT,), allow_add=True, sentiment=Sentiment.FLAT)
    assert isinstance(got, OptionMoves)
    assert (got.closes, got.open_right) == ((PUT,), None)
    refused = option_moves(Action.SELL, "both", (), allow_add=True, sentiment=Sentiment.FLAT)
    assert isinstance(refused, Reject)


def test_a_short_option_is_never_guessed_about():
    short = Held("SPY 261218C00605000", OptionRight.CALL, D(-1))
    got = option_moves(Action.BUY, "both", (short,), allow_add=True)
    assert isinstance(got, Reject)
    assert "held short (-1)" in got.reason


@pytest.mark.parametrize(
    ("symbol", "wanted"),
    [
        ("SPY 261218C00605000", Occ("SPY", date(2026, 12, 18), C, D(605))),
        ("AAPL261218P00192500", Occ("AAPL", date(2026, 12, 18), P, D("192.5"))),
        ("OPRA:spy 261218c00605000", Occ("SPY", date(2026, 12, 18), C, D(605))),
        ("SPY 261318C00605000", None),  # month 13
        ("SPY", None),
        ("ESZ2026", None),
    ],
)
def test_parse_occ(symbol, wanted):
    assert parse_occ(symbol) == wanted


held_contracts = st.lists(
    st.builds(
        Held,
        st.sampled_from(["A", "B", "C", "D"]),
        st.sampled_from(OptionRight),
        st.decimals(min_value=-3, max_value=5, places=0),
    ),
    max_size=4,
    unique_by=lambda h: h.symbol,
)


@given(
    st.sampled_from(Action),
    st.sampled_from(["both", "call", "put"]),
    held_contracts,
    st.booleans(),
    st.sampled_from([None, *Sentiment]),
)
def test_no_decision_sells_an_option_that_is_not_held(action, kind, held, allow_add, sentiment):
    """Options are bought to open and sold to close: whatever the signal and the holdings,
    every close is a contract held long, each once, and only a right is ever bought."""
    got = option_moves(action, kind, tuple(held), allow_add=allow_add, sentiment=sentiment)
    if not isinstance(got, OptionMoves):
        return
    longs = {h.symbol: h for h in held if h.quantity > 0}
    assert all(longs.get(c.symbol) == c for c in got.closes)
    assert len({c.symbol for c in got.closes}) == len(got.closes)
    if kind != "both" and got.open_right is not None:
        assert got.open_right == OptionRight(kind)  # call/put buy what they name, never invert
    if got.open_right is not None:  # the entry never buys the right it just closed
        assert all(c.right is not got.open_right for c in got.closes)
