"""The paper broker's option chains and futures listings (SPEC §15): a chain file read or
refused row by row, a generated chain around the mark, the chain a `paper chain` gave (journaled,
surviving a new broker on the same journal), quarterly futures, and `ES1!` never valued as a
contract of its own."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import pytest

from tests.helpers import FixedClock
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.brokers.paper.chains import expirations, parse_chain_file, strike_step
from tradepipe.core.options import OptionRight
from tradepipe.errors import OrderRejected
from tradepipe.journal import Journal

D = Decimal


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def paper(tmp_path):
    journal = Journal.open(tmp_path / "j.db")
    broker = PaperBroker("paper", journal, cash=D(100000), clock=FixedClock())  # 2026-11-20
    run(broker.connect())
    yield broker
    journal.close()


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        (
            "expiration,right,strike\n2026-12-18,call,200\n2026-12-18,P,192.5\n",
            [
                (date(2026, 12, 18), OptionRight.CALL, D(200)),
                (date(2026, 12, 18), OptionRight.PUT, D("192.5")),
            ],
        ),
        (
            ' [{"expiration": "2027-01-15", "right": "put", "strike": 190}] ',
            [(date(2027, 1, 15), OptionRight.PUT, D(190))],
        ),
        (
            '{"contracts": [{"expiration": "2027-01-15", "right": "Call", "strike": "5"}]}',
            [(date(2027, 1, 15), OptionRight.CALL, D(5))],
        ),
        ("", "the chain file is empty"),
        ("date,kind,k\n2026-12-18,call,1\n", "needs a header expiration,right,strike"),
        ("expiration,right,strike\n", "lists no contracts"),
        ("expiration,right,strike\n2026-13-18,call,200\n", "contract 1: expiration '2026-13-18'"),
        (
            "expiration,right,strike\n2026-12-18,call,1\n2026-12-18,straddle,1\n",
            "contract 2: right 'straddle'",
        ),
        (
            "expiration,right,strike\n2026-12-18,put,-5\n",
            "contract 1: strike '-5' is not a positive",
        ),
        ("[1, 2]", "contract 1: not an object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_a_chain_file_is_read_or_refused_naming_the_row(text, wanted):
    got = parse_chain_file(text)
    if isinstance(wanted, str):
        assert isinstance(got, str) and wanted in got, got
    else:
        assert got == wanted


@pytest.mark.parametrize(
    ("price", "step"),
    [("12", "0.5"), ("25", "1"), ("99.9", "1"), ("200", "2.5"), ("600", "5"), ("5000", "10")],
)
def test_strike_steps_suit_the_price(price, step):
    assert strike_step(D(price)) == D(step)


def test_generated_expirations_are_fridays_weekly_then_monthly():
    dates = expirations(date(2026, 11, 23))  # a Monday
    assert dates[:2] == [date(2026, 11, 27), date(2026, 12, 4)]
    assert all(d.weekday() == 4 for d in dates)
    assert date(2027, 4, 16) in dates and date(2027, 5, 21) in dates  # third Fridays
    assert len(dates) == len(set(dates)) <= 14


def test_no_chain_and_no_mark_is_refused_with_what_to_do(paper):
    with pytest.raises(OrderRejected, match=r"no chain was given for SPY .* no mark"):
        run(paper.option_chain("SPY"))


def test_a_generated_chain_surrounds_the_mark(paper):
    run(paper.observe_price("AAPL", D("201.30")))
    chain = run(paper.option_chain("AAPL"))
    strikes = sorted({c.strike for c in chain})
    assert (strikes[0], strikes[20], strikes[-1]) == (D("152.5"), D("202.5"), D("252.5"))
    assert {c.right for c in chain} == set(OptionRight)
    assert all(c.multiplier == 100 and c.underlying == "AAPL" for c in chain)
    assert "AAPL261120C00202500" in {c.symbol for c in chain}  # today is a Friday


def test_a_given_chain_replaces_the_generated_one_and_is_journaled(paper, tmp_path):
    run(paper.observe_price("SPY", D(600)))
    rows = [
        (date(2027, 1, 15), OptionRight.PUT, D(590)),
        (date(2027, 1, 15), OptionRight.CALL, D(610)),
    ]
    assert paper.give_chain("spy", rows) == "SPY"
    other = PaperBroker("paper", paper._journal, cash=D(1), clock=FixedClock())
    chain = run(other.option_chain("SPY"))
    assert sorted(c.symbol for c in chain) == ["SPY270115C00610000", "SPY270115P00590000"]
    paper.give_chain("SPY", rows[:1])  # a new file replaces the old chain whole
    assert [c.strike for c in run(paper.option_chain("SPY"))] == [D(590)]


def test_futures_listings_and_continuous_tickers(paper):
    listed = run(paper.futures_contracts("ES"))
    assert [(f.symbol, f.expiration) for f in listed[:2]] == [
        ("ESZ2026", date(2026, 12, 18)),
        ("ESH2027", date(2027, 3, 19)),
    ]
    with pytest.raises(OrderRejected, match="ZB is not a futures root it knows"):
        run(paper.futures_contracts("ZB"))
    with pytest.raises(OrderRejected, match="ES1! is a continuous futures ticker, not a contract"):
        run(paper.instrument("ES1!"))
    # ES1!'s price is the mark of the contract it maps to today
    run(paper.observe_price("ES1!", D(5000)))
    assert run(paper.quote("ESZ2026")) == D(5000)
