"""Alpaca's answers read as ours (tradepipe.brokers.alpaca.parsing): tables over JSON shaped
like Alpaca's (https://docs.alpaca.markets/reference), no server."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradepipe.brokers.alpaca.parsing import (
    STATUS,
    decimal,
    is_alpaca_named,
    is_crypto,
    is_option,
    leg_role,
    parse_time,
    position_symbol,
    quote_mid,
    ticker_of,
    to_order_state,
    to_position,
    trade_price,
)
from tradepipe.core.model import Fill, OrderRole, OrderStatus, OrderType, Position, Side

D = Decimal


@pytest.mark.parametrize(
    ("ticker", "crypto", "option", "symbol"),
    [
        ("AAPL", False, False, "AAPL"),
        ("BTC/USD", True, False, "BTCUSD"),
        ("AAPL250117C00150000", False, True, "AAPL250117C00150000"),
        ("AAPL250117X00150000", False, False, "AAPL250117X00150000"),  # X: neither call nor put
        ("BRK.B", False, False, "BRK.B"),
    ],
)
def test_a_ticker_is_crypto_by_its_slash_and_an_option_by_its_occ_symbol(
    ticker, crypto, option, symbol
):
    assert (is_crypto(ticker), is_option(ticker), position_symbol(ticker)) == (
        crypto,
        option,
        symbol,
    )


@pytest.mark.parametrize(
    ("symbol", "asset_class", "ticker"),
    [
        ("BTCUSD", "crypto", "BTC/USD"),
        ("ETHUSDT", "crypto", "ETH/USDT"),  # USDT is tried before USD
        ("ETHBTC", "crypto", "ETH/BTC"),
        ("BTC/USD", "crypto", "BTC/USD"),  # already an order's form
        ("USD", "crypto", "USD"),  # nothing before the quote currency
        ("AAPL", "us_equity", "AAPL"),
        ("SQUSD", None, "SQUSD"),  # not crypto: left as it is
    ],
)
def test_a_position_symbol_gets_the_slash_orders_use_back_for_crypto_only(
    symbol, asset_class, ticker
):
    assert ticker_of(symbol, asset_class) == ticker


@pytest.mark.parametrize(
    ("client_order_id", "alpaca_named"),
    [
        ("3f2b8c1e-9d4a-4b6f-8e2a-1c5d7e9f0a3b", True),  # Alpaca's uuid for a bracket leg
        ("s12-trend-paper-entry-a1b2c3d4e5", False),
        ("x" * 32, False),
        ("x" * 33, True),
    ],
)
def test_ids_longer_than_ours_are_alpacas_own(client_order_id, alpaca_named):
    assert is_alpaca_named(client_order_id) is alpaca_named


@pytest.mark.parametrize(
    ("leg", "role"),
    [
        ({"type": "limit"}, OrderRole.TAKE_PROFIT),
        ({"order_type": "limit"}, OrderRole.TAKE_PROFIT),
        ({"type": "stop"}, OrderRole.STOP_LOSS),
        ({"type": "stop_limit"}, OrderRole.STOP_LOSS),
    ],
)
def test_a_bracket_legs_role_is_read_from_its_type(leg, role):
    assert leg_role(leg) is role


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.50", D("1.50")), (2, D(2)), (0.1, D("0.1")), (None, None), ("", None), ("n/a", None)],
)
def test_decimal_reads_alpacas_string_numbers_and_none_for_what_is_not_one(value, expected):
    assert decimal(value) == expected


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2024-05-01T13:30:00.123456789Z", datetime(2024, 5, 1, 13, 30, 0, 123456, UTC)),
        ("2024-05-01T13:30:00Z", datetime(2024, 5, 1, 13, 30, tzinfo=UTC)),
        ("2024-05-01T09:30:00.5-04:00", datetime(2024, 5, 1, 13, 30, 0, 500000, UTC)),
        ("2024-05-01T13:30:00", datetime(2024, 5, 1, 13, 30, tzinfo=UTC)),  # naive: UTC
        (None, None),
        ("", None),
        ("yesterday", None),
    ],
)
def test_parse_time_drops_nanoseconds_and_answers_utc_aware_times(text, moment):
    assert parse_time(text) == moment


@pytest.mark.parametrize(
    ("raw", "ticker", "position"),
    [
        (
            {"symbol": "AAPL", "qty": "10", "side": "long", "avg_entry_price": "100.5"},
            None,
            Position("AAPL", D(10), D("100.5")),
        ),
        (  # Alpaca answers a short with a negative quantity …
            {"symbol": "AAPL", "qty": "-5", "side": "short", "avg_entry_price": "101"},
            None,
            Position("AAPL", D(-5), D(101)),
        ),
        (  # … and a positive one with side "short" is short too
            {"symbol": "AAPL", "qty": "5", "side": "short", "avg_entry_price": "101"},
            None,
            Position("AAPL", D(-5), D(101)),
        ),
        (
            {"symbol": "BTCUSD", "asset_class": "crypto", "qty": "0.5", "side": "long"},
            None,
            Position("BTC/USD", D("0.5"), None),
        ),
        (  # the ticker the engine asked for wins over the symbol
            {"symbol": "BTCUSD", "asset_class": "crypto", "qty": "0.5", "side": "long"},
            "BTC/USD",
            Position("BTC/USD", D("0.5"), None),
        ),
    ],
)
def test_to_position_signs_shorts_and_names_crypto_with_the_slash(raw, ticker, position):
    assert to_position(raw, ticker) == position


ORDER = {
    "id": "904837e3-3b76-47ec-b432-046db621571b",
    "client_order_id": "s1-entry",
    "symbol": "AAPL",
    "side": "buy",
    "type": "limit",
    "qty": "10",
    "filled_qty": "4",
    "filled_avg_price": "99.5",
    "limit_price": "100",
    "stop_price": None,
    "status": "partially_filled",
}
FILL = Fill("904837e3:4", "s1-entry", "AAPL", Side.BUY, D(4), D("99.5"), datetime(2024, 5, 1))


def test_to_order_state_reads_an_alpaca_order_under_our_id_with_its_fills():
    state = to_order_state(ORDER, "ours", (FILL,))
    assert state.client_order_id == "ours"
    assert state.status is OrderStatus.PARTIALLY_FILLED
    assert (state.filled_quantity, state.average_fill_price) == (D(4), D("99.5"))
    assert state.broker_order_id == ORDER["id"] and state.fills == (FILL,)
    assert (state.ticker, state.side, state.quantity) == ("AAPL", Side.BUY, D(10))
    assert (state.order_type, state.limit_price, state.stop_price) == (
        OrderType.LIMIT,
        D(100),
        None,
    )
    assert state.message is None


@pytest.mark.parametrize(
    ("changes", "status", "message"),
    [
        ({"status": "held"}, OrderStatus.ACCEPTED, "held until the entry fills"),
        ({"status": "replaced"}, OrderStatus.CANCELED, "replaced"),
        ({"status": "pending_new"}, OrderStatus.SUBMITTED, None),
        ({"status": "done_for_day"}, OrderStatus.ACCEPTED, "done for the day"),
        ({"status": "rejected"}, OrderStatus.REJECTED, None),
        ({"status": "something_new"}, OrderStatus.UNKNOWN, None),
    ],
)
def test_alpacas_statuses_map_to_ours_with_the_words_the_status_leaves_out(
    changes, status, message
):
    state = to_order_state(ORDER | changes, "ours", ())
    assert (state.status, state.message) == (status, message)


@pytest.mark.parametrize(
    ("changes", "order_type", "side", "filled"),
    [
        ({"type": None, "order_type": "stop"}, OrderType.STOP, Side.BUY, D(4)),
        ({"type": "trailing_stop"}, OrderType.TRAILING_STOP, Side.BUY, D(4)),
        ({"type": "oco"}, None, Side.BUY, D(4)),  # not one of ours
        ({"side": None, "filled_qty": None}, OrderType.LIMIT, None, D(0)),
    ],
)
def test_to_order_state_leaves_out_what_it_cannot_read(changes, order_type, side, filled):
    state = to_order_state(ORDER | changes, "ours", ())
    assert (state.order_type, state.side, state.filled_quantity) == (order_type, side, filled)


def test_every_alpaca_status_has_one_of_ours():
    assert OrderStatus.UNKNOWN not in STATUS.values()
    assert STATUS["filled"] is OrderStatus.FILLED and STATUS["expired"] is OrderStatus.EXPIRED


@pytest.mark.parametrize(
    ("trades", "quotes", "price", "mid"),
    [
        ({"AAPL": {"p": 101.25}}, {"AAPL": {"bp": 100, "ap": 101}}, D("101.25"), D("100.5")),
        ({}, {"AAPL": {"bp": 100, "ap": None}}, None, None),  # no ask: no mid
        ({"AAPL": {}}, {"AAPL": {"bp": 0, "ap": 101}}, None, None),  # a zero bid is none
        ({"MSFT": {"p": 1}}, {}, None, None),  # another symbol's answer
    ],
)
def test_latest_trade_and_quote_answers_read_as_a_price(trades, quotes, price, mid):
    assert (trade_price(trades, "AAPL"), quote_mid(quotes, "AAPL")) == (price, mid)
