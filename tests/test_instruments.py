"""Instruments (SPEC §12): which tickers are futures, what a root's contract is worth. Pure."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.instruments import (
    FUTURES_ROOTS,
    MONTH_CODES,
    ContractSpec,
    FuturesTicker,
    contract_spec,
    is_us_option,
    lane_key,
    overridden,
    parse_future,
)

D = Decimal


@pytest.mark.parametrize(
    ("ticker", "future"),
    [
        ("ESZ2026", FuturesTicker("ES", 12, 2026)),
        ("ESZ26", FuturesTicker("ES", 12, 2026)),
        ("MNQH2027", FuturesTicker("MNQ", 3, 2027)),
        ("esz2026", FuturesTicker("ES", 12, 2026)),  # lower case: one spelling
        ("CME_MINI:ESZ2026", FuturesTicker("ES", 12, 2026)),  # TradingView's exchange prefix
        ("NYMEX:CLF27", FuturesTicker("CL", 1, 2027)),
        ("M2KU2026", FuturesTicker("M2K", 9, 2026)),  # a digit in the root, K a month code
        ("MGCG26", FuturesTicker("MGC", 2, 2026)),  # G is both the root's end and the month
        ("ZBZ2026", FuturesTicker("ZB", 12, 2026)),  # an unknown root is still a future
        ("ES1!", FuturesTicker("ES", None, None)),  # TradingView's continuous contract
        ("MNQ2!", FuturesTicker("MNQ", None, None)),
        ("AAPL", None),
        ("ES", None),  # a root alone names no contract
        ("ESZ", None),
        ("ESZ6", None),  # a one-digit year is IB's local symbol, not a ticker here
        ("ESA2026", None),  # A is no month code
        ("ESZ1999", None),
        ("BTCUSDT", None),
        ("BTC/USD", None),
        ("SPY 261218C00600000", None),
        ("BIST:XU100", None),  # an index: "U100" has no two-digit year
        ("US30", None),
        ("", None),
    ],
)
def test_a_futures_ticker_is_root_month_code_year(ticker, future):
    assert parse_future(ticker) == future


@given(
    root=st.sampled_from(sorted(FUTURES_ROOTS)),
    month=st.integers(1, 12),
    year=st.integers(2000, 2099),
    short=st.booleans(),
    prefix=st.sampled_from(["", "CME:", "CME_MINI:", "NYMEX:"]),
)
def test_every_known_root_reads_back_from_any_spelling_of_its_contracts(
    root, month, year, short, prefix
):
    written_year = f"{year % 100:02d}" if short else str(year)
    written = f"{prefix}{root}{MONTH_CODES[month - 1]}{written_year}"
    assert parse_future(written) == FuturesTicker(root, month, year)
    assert parse_future(written.lower()) == FuturesTicker(root, month, year)


@pytest.mark.parametrize(
    ("root", "multiplier", "tick"),
    [
        ("ES", "50", "0.25"),
        ("MES", "5", "0.25"),
        ("NQ", "20", "0.25"),
        ("MNQ", "2", "0.25"),
        ("YM", "5", "1"),
        ("MYM", "0.5", "1"),
        ("RTY", "50", "0.1"),
        ("M2K", "5", "0.1"),
        ("CL", "1000", "0.01"),
        ("MCL", "100", "0.01"),
        ("GC", "100", "0.1"),
        ("MGC", "10", "0.1"),
    ],
)
def test_the_roots_of_spec_12(root, multiplier, tick):
    assert contract_spec(root) == ContractSpec(D(multiplier), D(tick), D(1))


def test_an_accounts_override_wins_over_the_table():
    mine = {"ES": ContractSpec(D(5), D("0.25"))}
    assert contract_spec("ES", mine) == ContractSpec(D(5), D("0.25"))
    assert contract_spec("NQ", mine) == FUTURES_ROOTS["NQ"]
    assert contract_spec("ZB", mine) is None
    assert contract_spec("ZB") is None


@pytest.mark.parametrize(
    ("root", "given_", "answer"),
    [
        ("ES", {}, ContractSpec(D(50), D("0.25"))),
        ("ES", {"multiplier": D(5)}, ContractSpec(D(5), D("0.25"))),  # the rest from the table
        ("CL", {"tick_size": D("0.05"), "lot_size": D(2)}, ContractSpec(D(1000), D("0.05"), D(2))),
        (
            "ZB",
            {"multiplier": D(1000), "tick_size": D("0.03125")},
            ContractSpec(D(1000), D("0.03125"), D(1)),
        ),
        (
            "ZB",
            {"multiplier": D(1000)},
            "ZB is not a futures root tradepipe knows (ES, MES, NQ, MNQ, YM, MYM, RTY, M2K, CL,"
            " MCL, GC, MGC): give its tick_size",
        ),
        ("ZB", {}, "ZB is not a futures root tradepipe knows"),
    ],
)
def test_a_config_table_completes_from_the_table_or_says_what_is_missing(root, given_, answer):
    got = overridden(root, **given_)
    if isinstance(answer, str):
        assert isinstance(got, str) and got.startswith(answer)
        if not given_:
            assert got.endswith("give its multiplier and tick_size")
    else:
        assert got == answer


@pytest.mark.parametrize(
    ("ticker", "option"),
    [
        ("SPY 261218C00600000", True),
        ("SPY261218C00600000", True),
        ("OPRA:AAPL261218P00200000", True),
        ("AAPL", False),
        ("ESZ2026", False),
    ],
)
def test_an_occ_symbol_is_a_us_option(ticker, option):
    assert is_us_option(ticker) is option


@pytest.mark.parametrize(
    ("ticker", "key"),
    [
        ("AAPL", "AAPL"),
        ("AAPL 261218C00200000", "AAPL"),  # an option contract: with its underlying
        ("AAPL261218P00195000", "AAPL"),
        ("SPY 261218C00600000", "SPY"),
        ("ES1!", "ES!"),  # a continuous future and its dated contracts: one lane
        ("ES2!", "ES!"),
        ("ESZ2026", "ES!"),
        ("ESH27", "ES!"),
        ("MNQH2027", "MNQ!"),
        ("BTCUSDT", "BTCUSDT"),
        ("BTC/USDT:USDT", "BTC/USDT:USDT"),
        ("EURUSD", "EURUSD"),
    ],
)
def test_lane_key_puts_every_name_of_one_underlying_in_one_lane(ticker, key):
    assert lane_key(ticker) == key


@given(st.from_regex(r"[A-Z]{1,5}", fullmatch=True))
def test_a_plain_stock_ticker_is_its_own_lane(ticker):
    assert lane_key(ticker) == ticker
