"""ccxt's markets read as ours (tradepipe.brokers.ccxt.markets): tables over market, balance,
position and ticker dicts shaped as ccxt answers them for Binance. No server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ccxt.base.decimal_to_precision import DECIMAL_PLACES, SIGNIFICANT_DIGITS, TICK_SIZE

from tradepipe.brokers.base import InstrumentRules
from tradepipe.brokers.ccxt.markets import (
    check_min_notional,
    check_min_quantity,
    check_written,
    find_market,
    instrument_rules,
    price_of,
    spot_holdings,
    swap_position,
)
from tradepipe.core.instruments import InstrumentKind
from tradepipe.core.model import Position
from tradepipe.errors import OrderRejected

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


CRYPTO = InstrumentKind.CRYPTO
ONE = D(1)


def rules_of(*steps, multiplier=ONE) -> InstrumentRules:
    return InstrumentRules(*steps, kind=CRYPTO, multiplier=multiplier)


@pytest.mark.parametrize(
    ("market_", "mode", "rules"),
    [
        (BTC, TICK_SIZE, rules_of(D("0.01"), D("0.00001"), D("0.0001"), D(5))),
        (
            market("BTC/USDT", "BTCUSDT", precision={"amount": 5, "price": 2}),
            DECIMAL_PLACES,
            rules_of(D("0.01"), D("0.00001"), D("0.0001"), D(5)),
        ),
        (  # a mode tradepipe does not read: no steps rather than wrong ones
            BTC,
            SIGNIFICANT_DIGITS,
            rules_of(None, None, D("0.0001"), D(5)),
        ),
        (
            market("BTC/USDT", "BTCUSDT", precision={"price": None}, limits={}),
            TICK_SIZE,
            rules_of(),
        ),
        # SPEC §12: a contract market's unit is worth its contractSize per point; spot has none
        (  # a linear perpetual: one contract is one coin
            market("BTC/USDT:USDT", "BTCUSDT", "swap", contract=True, contractSize=1.0),
            TICK_SIZE,
            rules_of(D("0.01"), D("0.00001"), D("0.0001"), D(5)),
        ),
        (  # an inverse or dated contract worth 100 (USD) per point
            market("BTC/USD:BTC", "BTCUSD_PERP", "swap", contract=True, contractSize=100.0),
            TICK_SIZE,
            rules_of(D("0.01"), D("0.00001"), D("0.0001"), D(5), multiplier=D(100)),
        ),
        (  # a fractional contract size, as ccxt gives it (a float)
            market("ETH/USDT:USDT", "ETHUSDT", "swap", contract=True, contractSize=0.1),
            TICK_SIZE,
            rules_of(D("0.01"), D("0.00001"), D("0.0001"), D(5), multiplier=D("0.1")),
        ),
        (
            BTC | {"contractSize": None},
            TICK_SIZE,
            rules_of(D("0.01"), D("0.00001"), D("0.0001"), D(5)),
        ),
    ],
    ids=[
        "tick-size",
        "decimal-places",
        "unread-mode",
        "no-steps",
        "perp-1",
        "contract-100",
        "contract-0.1",
        "spot-none",
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
        # contracts × contract size × price: 1 contract of 0.1 at 40 is worth 4, not 40
        (
            D(1),
            D(40),
            InstrumentRules(min_notional=D(5), multiplier=D("0.1")),
            "binance: order value 4 USDT of BTC/USDT is below the market's minimum notional 5",
        ),
        (D("0.1"), D(40), InstrumentRules(min_notional=D(5), multiplier=D(100)), None),  # 400
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


# SPEC §12 through ccxt's own market parsing (no network): what an exchange's instrument list
# becomes in ccxt is what tradepipe reads its contract size from.
OKX_LINEAR_SWAP = {
    "instId": "BTC-USDT-SWAP",
    "instType": "SWAP",
    "instFamily": "BTC-USDT",
    "uly": "BTC-USDT",
    "settleCcy": "USDT",
    "ctType": "linear",
    "ctVal": "0.01",  # one contract is 0.01 BTC
    "ctValCcy": "BTC",
    "ctMult": "1",
    "lotSz": "0.01",
    "minSz": "0.01",
    "tickSz": "0.1",
    "state": "live",
    "listTime": "1573557408000",
    "expTime": "",
    "lever": "100",
}
BINANCE_INVERSE_PERP = {
    "symbol": "BTCUSD_PERP",
    "pair": "BTCUSD",
    "contractType": "PERPETUAL",
    "contractStatus": "TRADING",
    "contractSize": 100,  # USD per contract, at any price
    "marginAsset": "BTC",
    "baseAsset": "BTC",
    "quoteAsset": "USD",
    "pricePrecision": 1,
    "quantityPrecision": 0,
    "deliveryDate": 4133404800000,
    "onboardDate": 1597042800000,
    "filters": [
        {"filterType": "PRICE_FILTER", "tickSize": "0.1", "minPrice": "1000", "maxPrice": "1e7"},
        {"filterType": "LOT_SIZE", "stepSize": "1", "minQty": "1", "maxQty": "1000000"},
    ],
    "orderTypes": ["LIMIT", "MARKET"],
    "timeInForce": ["GTC"],
}


def test_a_linear_contracts_size_as_ccxt_parses_it_is_its_multiplier():
    import ccxt

    okx = ccxt.okx()
    market_ = okx.parse_market(OKX_LINEAR_SWAP)
    rules = instrument_rules(market_, okx.precisionMode)
    assert (rules.kind, rules.multiplier) == (InstrumentKind.CRYPTO, D("0.01"))
    assert (rules.tick_size, rules.lot_size) == (D("0.1"), D("0.01"))


def test_an_inverse_contract_is_refused_not_sized_as_if_it_had_a_multiplier():
    import ccxt

    binance = ccxt.binance()
    market_ = binance.parse_market(BINANCE_INVERSE_PERP)
    assert market_["inverse"] and market_["contractSize"] == 100
    with pytest.raises(OrderRejected, match=r"BTC/USD:BTC is an inverse contract \(each worth 100"):
        instrument_rules(market_, binance.precisionMode)
