"""Continuous futures tickers mapped to the front contract (SPEC §15): the roll two days before
expiry, the second contract, a chain that runs out. Pure tables."""

from __future__ import annotations

from datetime import date

import pytest

from tradepipe.core.continuous import (
    ListedFuture,
    Mapped,
    Unmapped,
    front_contract,
    quarterly_contracts,
    third_friday,
)

ESZ = ListedFuture("ESZ2026", date(2026, 12, 18))
ESH = ListedFuture("ESH2027", date(2027, 3, 19))
ESM = ListedFuture("ESM2027", date(2027, 6, 18))
LISTED = [ESM, ESZ, ESH]  # any order


@pytest.mark.parametrize(
    ("today", "nth", "roll_days", "symbol"),
    [
        (date(2026, 12, 4), 1, 2, "ESZ2026"),
        (date(2026, 12, 15), 1, 2, "ESZ2026"),  # three days before expiry: still the front
        (date(2026, 12, 16), 1, 2, "ESH2027"),  # two days before: rolled
        (date(2026, 12, 18), 1, 2, "ESH2027"),
        (date(2026, 12, 16), 1, 0, "ESZ2026"),  # roll on expiry day only
        (date(2026, 12, 10), 1, 8, "ESH2027"),
        (date(2026, 12, 4), 2, 2, "ESH2027"),  # ES2!
        (date(2026, 12, 16), 2, 2, "ESM2027"),
    ],
)
def test_the_front_contract(today, nth, roll_days, symbol):
    found = front_contract(f"ES{nth}!", nth, LISTED, today, roll_days)
    assert isinstance(found, Mapped) and found.contract.symbol == symbol


def test_the_mapping_says_what_rolled():
    found = front_contract("ES1!", 1, LISTED, date(2026, 12, 17))
    assert isinstance(found, Mapped)
    assert found.fact == (
        "ES1! → ESH2027 (expires 2027-03-19; ESZ2026 rolled on 2026-12-16;"
        " roll 2 days before expiry)"
    )
    quiet = front_contract("ES1!", 1, LISTED, date(2026, 12, 4))
    assert isinstance(quiet, Mapped)
    assert quiet.fact == "ES1! → ESZ2026 (expires 2026-12-18; roll 2 days before expiry)"


@pytest.mark.parametrize(
    ("listed", "nth", "says"),
    [
        ([ESZ], 1, "no contract number 1 expires more than 2 days after 2026-12-17"),
        ([ESZ, ESH], 3, "no contract number 3"),
        ([], 1, "(0 listed)"),
    ],
)
def test_no_contract_says_why(listed, nth, says):
    found = front_contract("ES1!", nth, listed, date(2026, 12, 17))
    assert isinstance(found, Unmapped) and says in found.reason


@pytest.mark.parametrize(
    ("year", "month", "day"),
    [(2026, 12, 18), (2027, 3, 19), (2027, 6, 18), (2027, 9, 17), (2026, 5, 15), (2027, 10, 15)],
)
def test_third_fridays(year, month, day):
    assert third_friday(year, month) == date(year, month, day)


def test_the_quarterly_cycle():
    assert [c.symbol for c in quarterly_contracts("ES", date(2026, 12, 4))] == [
        "ESZ2026",
        "ESH2027",
        "ESM2027",
        "ESU2027",
    ]
    after_expiry = quarterly_contracts("NQ", date(2026, 12, 19), count=2)
    assert after_expiry == [
        ListedFuture("NQH2027", date(2027, 3, 19)),
        ListedFuture("NQM2027", date(2027, 6, 18)),
    ]
