"""Choosing an option contract from a chain (SPEC §15): every field, relative dates, a missing
strike, in and out of the money both ways, a weekend expiry. Pure tables and properties."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.options import (
    NoContract,
    OptionAsk,
    OptionContract,
    OptionRight,
    Selection,
    expiration_target,
    occ_symbol,
    select_contract,
)

TODAY = date(2026, 12, 4)  # a Friday
CALL, PUT = OptionRight.CALL, OptionRight.PUT
FRIDAYS = [TODAY + timedelta(weeks=n) for n in range(6)]  # 12-04 … 01-08
MONTHLY = [date(2027, 1, 15), date(2027, 3, 19), date(2027, 6, 18)]
STRIKES = [D(s) for s in range(90, 111, 5)]  # 90 95 100 105 110


def chain(expirations=FRIDAYS + MONTHLY, strikes=STRIKES, underlying="AAPL"):
    return [
        OptionContract(occ_symbol(underlying, e, r, s), underlying, r, e, s)
        for e in expirations
        for r in OptionRight
        for s in strikes
    ]


CHAIN = chain()


def pick(ask: OptionAsk, price="101", bullish=True, of=CHAIN):
    return select_contract(of, D(price), TODAY, ask, bullish=bullish)


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("2026-12-18", date(2026, 12, 18)),
        ("+0 days", TODAY),
        ("+1 day", date(2026, 12, 5)),
        ("+2 weeks", date(2026, 12, 18)),
        ("+1 month", date(2027, 1, 4)),
        ("+6 months", date(2027, 6, 4)),
        ("+ 3 Days", date(2026, 12, 7)),
    ],
)
def test_expiration_targets(text, target):
    assert expiration_target(text, TODAY) == target


def test_a_month_later_on_the_31st_is_the_months_last_day():
    assert expiration_target("+1 month", date(2027, 1, 31)) == date(2027, 2, 28)
    assert expiration_target("+1 month", date(2028, 1, 31)) == date(2028, 2, 29)
    assert expiration_target("+14 months", date(2026, 12, 31)) == date(2028, 2, 29)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-12-03", "before today (2026-12-04)"),
        ("next friday", 'neither a date like 2026-12-18 nor "+N days"'),
        ("+2 fortnights", "neither a date"),
        ("-1 days", "neither a date"),
    ],
)
def test_expirations_that_name_no_date(text, says):
    found = expiration_target(text, TODAY)
    assert isinstance(found, str) and says in found


# (ask, underlying price, bullish) → (right, expiration, strike)
SELECTIONS = [
    # optionType
    (OptionAsk("call"), "101", True, (CALL, TODAY, D(100))),
    (OptionAsk("put"), "101", True, (PUT, TODAY, D(100))),
    (OptionAsk("both"), "101", True, (CALL, TODAY, D(100))),
    (OptionAsk("both"), "101", False, (PUT, TODAY, D(100))),
    # expiration: the nearest listed on or after the target
    (OptionAsk("call", "+0 days"), "101", True, (CALL, TODAY, D(100))),
    (OptionAsk("call", "+1 day"), "101", True, (CALL, date(2026, 12, 11), D(100))),
    (OptionAsk("call", "2026-12-12"), "101", True, (CALL, date(2026, 12, 18), D(100))),  # Sat
    (OptionAsk("call", "+6 weeks"), "101", True, (CALL, date(2027, 1, 15), D(100))),
    (OptionAsk("call", "+3 months"), "101", True, (CALL, date(2027, 3, 19), D(100))),
    # strikesAway, out of the money: calls up, puts down
    (OptionAsk("call", strikes_away=1), "101", True, (CALL, TODAY, D(105))),
    (OptionAsk("call", strikes_away=2), "101", True, (CALL, TODAY, D(110))),
    (OptionAsk("put", strikes_away=1), "101", True, (PUT, TODAY, D(95))),
    (OptionAsk("put", strikes_away=2), "101", True, (PUT, TODAY, D(90))),
    # in the money: calls down, puts up
    (OptionAsk("call", strikes_away=1, intrinsic_value="itm"), "101", True, (CALL, TODAY, D(95))),
    (OptionAsk("put", strikes_away=1, intrinsic_value="itm"), "101", True, (PUT, TODAY, D(105))),
    (OptionAsk("both", strikes_away=1), "101", False, (PUT, TODAY, D(95))),
    # at the money: the listed strike nearest the price; a tie goes to the lower strike
    (OptionAsk("call"), "103", True, (CALL, TODAY, D(105))),
    (OptionAsk("call"), "102.5", True, (CALL, TODAY, D(100))),
    (OptionAsk("call"), "150", True, (CALL, TODAY, D(110))),
    # strikePrice: the listed strike nearest it (a tie to the lower), strikesAway aside
    (OptionAsk("call", strike_price=D(104)), "101", True, (CALL, TODAY, D(105))),
    (OptionAsk("put", strike_price=D("97.5")), "101", True, (PUT, TODAY, D(95))),
    (OptionAsk("call", strike_price=D(100), strikes_away=2), "101", True, (CALL, TODAY, D(100))),
]


@pytest.mark.parametrize(("ask", "price", "bullish", "chosen"), SELECTIONS)
def test_selection(ask, price, bullish, chosen):
    found = pick(ask, price, bullish)
    assert isinstance(found, Selection), found
    contract = found.contract
    assert (contract.right, contract.expiration, contract.strike) == chosen
    assert contract.multiplier == 100


def test_the_facts_say_how_it_was_chosen():
    found = pick(OptionAsk("both", "+2 weeks", strikes_away=1), "101", bullish=False)
    assert isinstance(found, Selection)
    assert found.contract.symbol == "AAPL261218P00095000"
    assert found.facts == (
        "optionType both: put (bearish entry)",
        "expiration +2 weeks → 2026-12-18: nearest listed on or after it 2026-12-18",
        "underlying 101: at the money 100; strikesAway 1 out of the money → 95 (5 strikes 90–110)",
    )


@pytest.mark.parametrize(
    ("ask", "price", "of", "says"),
    [
        (OptionAsk("call", strikes_away=3), "101", CHAIN, "list only 2 strikes beyond"),
        (OptionAsk("put", strikes_away=3), "101", CHAIN, "list only 2 strikes beyond"),
        (OptionAsk("call", "2027-07-01"), "101", CHAIN, "the last listed is 2027-06-18"),
        (OptionAsk("call", "2026-12-01"), "101", CHAIN, "before today"),
        (OptionAsk("call"), "101", chain([date(2026, 11, 27)]), "no call expiring on or after"),
        (OptionAsk("call"), "101", [], "no call expiring on or after"),
        (OptionAsk("call"), "0", CHAIN, "no usable price of the underlying"),
    ],
)
def test_no_contract_says_why(ask, price, of, says):
    found = pick(ask, price, of=of)
    assert isinstance(found, NoContract) and says in found.reason, found


def test_a_chain_of_one_side_has_no_contract_of_the_other():
    calls_only = [c for c in CHAIN if c.right is CALL]
    found = pick(OptionAsk("put"), of=calls_only)
    assert isinstance(found, NoContract) and "no put expiring" in found.reason


def test_occ_symbols():
    assert occ_symbol("SPY", date(2026, 12, 18), CALL, D("600")) == "SPY261218C00600000"
    assert occ_symbol("AAPL", date(2027, 1, 15), PUT, D("182.5")) == "AAPL270115P00182500"


strikes = st.lists(
    st.decimals(min_value=1, max_value=1000, places=1), min_size=1, max_size=30, unique=True
)


@given(
    strikes=strikes,
    price=st.decimals(min_value="0.5", max_value=1200, places=2),
    away=st.integers(0, 5),
    itm=st.booleans(),
    right=st.sampled_from(["call", "put"]),
)
def test_out_of_the_money_is_never_nearer_the_money_than_at_the_money(
    strikes, price, away, itm, right
):
    """A call chosen N strikes out of the money never has a lower strike than the one at the
    money (a put: never higher); in the money the other way; and the contract is listed."""
    of = chain([TODAY], strikes)
    ask = OptionAsk(right, strikes_away=away, intrinsic_value="itm" if itm else "otm")
    found = select_contract(of, price, TODAY, ask, bullish=True)
    if isinstance(found, NoContract):
        assert "strikesAway" in found.reason
        return
    assert found.contract in of
    atm = select_contract(of, price, TODAY, OptionAsk(right), bullish=True)
    assert isinstance(atm, Selection)
    up = (right == "call") != itm
    if up:
        assert found.contract.strike >= atm.contract.strike
    else:
        assert found.contract.strike <= atm.contract.strike
    assert (
        abs(
            sorted(strikes).index(found.contract.strike)
            - sorted(strikes).index(atm.contract.strike)
        )
        == away
    )
