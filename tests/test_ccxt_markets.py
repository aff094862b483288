"""ccxt's markets read as ours (tradepipe.brokers.ccxt_markets): tables over market, balance,
position and ticker dicts shaped as ccxt answers them for Binance. No server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ccxt.base.decimal_to_precision import DECIMAL_PLACES, SIGNIFICANT_DIGITS, TICK_SIZE

from tradepipe.brokers.base import InstrumentRules
from tradepipe.brokers.ccxt_markets import (
    check_min_notional,
    check_min_quantity,
    check_written,
    find_market,
    instrument_rules,
    price_of,
    spot_holdings,
    swap_position,
)
from tradepipe.errors import OrderRejected
from tradepipe.orders import Position

D = Decimal


def market(symbol: str, market_id: str, kind: str = "spot", **fields) -> dict:
    base, quote = symbol.split(":")[0].split("/")
    return {
        "id": market_id,
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "type": kind,
        "active": True,
        "precision": {"amount": 1e-05, "price": 0.01},
        "limits": {"amount": {"min": 0.0001}, "cost": {"min": 5.0}},
    } | fields


BTC = market("BTC/USDT", "BTCUSDT")
PERP = market("BTC/USDT:USDT", "BTCUSDT", "swap")
HALTED = market("ETH/USDT", "ETHUSDT", active=False)
MARKETS = {m["symbol"]: m for m in (BTC, PERP, HALTED)}
BY_ID = {"BTCUSDT": [BTC, PERP], "ETHUSDT": [HALTED]}


@pytest.mark.parametrize(
    ("ticker", "market_type", "symbol"),
    [
        ("BTCUSDT", "spot", "BTC/USDT"),
        ("BINANCE:BTCUSDT", "spot", "BTC/USDT"),
        ("BTC/USDT", "spot", "BTC/USDT"),
        ("BTCUSDT.P", "swap", "BTC/USDT:USDT"),
        ("BINANCE:BTCUSDT.P", "swap", "BTC/USDT:USDT"),
        ("BTCUSDT", "swap", "BTC/USDT:USDT"),  # the same id, the account's market type
        ("BTC/USDT", "swap", None),  # ccxt's spot symbol is not the perpetual
        ("ETHUSDT", "spot", None),  # inactive
        ("DOGEUSDT", "spot", None),
    ],
)
def test_a_tradingview_ticker_names_the_market_of_the_accounts_type(ticker, market_type, symbol):
    found = find_market(MARKETS, BY_ID, ticker, market_type)
    assert (found and found["symbol"]) == symbol


@pytest.mark.parametrize(
    ("market_", "mode", "rules"),
    [
        (BTC, TICK_SIZE, InstrumentRules(D("0.01"), D("0.00001"), D("0.0001"), D(5))),
        (
            market("BTC/USDT", "BTCUSDT", precision={"amount": 5, "price": 2}),
            DECIMAL_PLACES,
            InstrumentRules(D("0.01"), D("0.00001"), D("0.0001"), D(5)),
        ),
        (  # a mode tradepipe does not read: no steps rather than wrong ones
            BTC,
            SIGNIFICANT_DIGITS,
            InstrumentRules(None, None, D("0.0001"), D(5)),
        ),
        (
            market("BTC/USDT", "BTCUSDT", precision={"price": None}, limits={}),
            TICK_SIZE,
            InstrumentRules(),
        ),
    ],
)
def test_a_markets_precision_and_limits_are_its_instrument_rules(market_, mode, rules):
    assert instrument_rules(market_, mode) == rules


@pytest.mark.parametrize(
    ("value", "written", "is_price", "words"),
    [
        (D("50000.5"), "50000.5", True, None),
        (D("50000.50"), "50000.5", True, None),  # the same number
        (D("0.00123"), "0.00123", False, None),
        (
            D("50000.555"),
            "50000.55",
            True,
            "binance: limit price 50000.555 of BTC/USDT is not a multiple of the market's step"
            " 0.01 (it would be sent as 50000.55)",
        ),
        (D("0.000123"), "0.00012", False, "quantity 0.000123 of BTC/USDT is not a multiple"),
    ],
)
def test_a_value_the_exchange_would_write_otherwise_is_refused_naming_the_step(
    value, written, is_price, words
):
    field = "limit price" if is_price else "quantity"

    def check() -> Decimal:
        return check_written(
            value,
            written,
            field=field,
            is_price=is_price,
            market=BTC,
            precision_mode=TICK_SIZE,
            exchange_id="binance",
        )

    if words is None:
        assert check() == value
        return
    with pytest.raises(OrderRejected) as refused:
        check()
    assert words in str(refused.value)
    if not is_price:
        assert "step 0.00001" in str(refused.value)


RULES = InstrumentRules(min_quantity=D("0.0001"), min_notional=D(5))


@pytest.mark.parametrize(
    ("quantity", "reference", "rules", "words"),
    [
        (D("0.0001"), D(50000), RULES, None),
        (D("0.0001"), None, RULES, None),  # no price to check the value with
        (D("0.001"), D(50000), InstrumentRules(), None),
        (
            D("0.00009"),
            D(50000),
            RULES,
            "binance: quantity 0.00009 of BTC/USDT is below the market's minimum 0.0001",
        ),
        (
            D("0.0001"),
            D(40000),
            RULES,
            "binance: order value 4 USDT of BTC/USDT is below the market's minimum notional 5",
        ),
    ],
)
def test_minimum_quantity_and_notional_are_checked_before_sending(
    quantity, reference, rules, words
):
    def check() -> None:
        check_min_quantity(quantity, rules, "BTC/USDT", "binance")
        check_min_notional(quantity, reference, rules, BTC, "binance")

    if words is None:
        check()
        return
    with pytest.raises(OrderRejected) as refused:
        check()
    assert words in str(refused.value)


@pytest.mark.parametrize(
    ("totals", "used", "held"),
    [
        ({"USDT": 1000.0, "BTC": 0.5}, [], [("BTC/USDT", D("0.5"))]),
        ({"BTC": 0.0, "ETH": None}, [], []),  # nothing held
        ({"BTC": 0.5}, ["BTC/USDC"], [("BTC/USDC", D("0.5"))]),  # the market this process used
        ({"ETH": 2.0, "BTC": 0.5}, ["ETH/BTC"], [("ETH/BTC", D(2))]),  # BTC is that one's cash
        ({"BNB": 1.0}, [], []),  # no market against a usual quote currency
        ({"EUR": 10.0, "USDC": 5.0}, [], []),  # cash
    ],
)
def test_spot_balances_read_as_holdings_in_their_market(totals, used, held):
    assert spot_holdings(totals, used, {"BTC/USDT": BTC, "ETH/USDT": HALTED}) == held


@pytest.mark.parametrize(
    ("raw", "position"),
    [
        (
            {"symbol": "BTC/USDT:USDT", "contracts": 2, "contractSize": 0.001, "side": "long"},
            Position("BTCUSDT.P", D("0.002"), None),
        ),
        (
            {"contracts": 3, "contractSize": None, "side": "short", "entryPrice": 50000.0},
            Position("BTCUSDT.P", D(-3), D(50000)),
        ),
        ({"contracts": None, "side": "long"}, Position("BTCUSDT.P", D(0), None)),
    ],
)
def test_a_swap_position_is_contracts_times_their_size_negative_when_short(raw, position):
    assert swap_position(raw, "BTCUSDT.P") == position


@pytest.mark.parametrize(
    ("ticker", "price"),
    [
        ({"last": 50000.5, "bid": 49999.0, "ask": 50001.0}, D("50000.5")),
        ({"last": None, "bid": 49999.0, "ask": 50001.0}, D(50000)),
        ({"last": 0.0, "bid": 49999.0, "ask": 50001.0}, D(50000)),  # a zero last is none
        ({"last": None, "bid": 49999.0, "ask": None}, None),
        ({}, None),
    ],
)
def test_a_tickers_price_is_its_last_else_the_middle_of_bid_and_ask(ticker, price):
    assert price_of(ticker) == price
