"""Orders both ways between tradepipe and ccxt (tradepipe.brokers.ccxt.orders): tables over
ccxt's unified order and trade dicts, shaped as ccxt answers them for Binance spot. No server."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradepipe.brokers.ccxt.orders import (
    covers,
    decimal,
    order_args,
    order_type_of,
    status_of,
    time_of,
    to_fills,
    to_order_state,
    trades_of,
)
from tradepipe.core.model import Fill, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tradepipe.errors import OrderRejected

D = Decimal
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SPOT = frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT})
MARKET, LIMIT, STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
STOP_LIMIT, TRAILING = OrderType.STOP_LIMIT, OrderType.TRAILING_STOP
GTC, DAY, IOC, OPG = TimeInForce.GTC, TimeInForce.DAY, TimeInForce.IOC, TimeInForce.OPG


def request(order_type=MARKET, time_in_force=GTC, quantity="0.01", **prices) -> OrderRequest:
    return OrderRequest(
        "tp-1", "binance", "BTCUSDT", Side.BUY, D(quantity), order_type, time_in_force, **prices
    )


def on_step(value: Decimal, field: str) -> Decimal:
    """The market's precision, as the adapter passes it: 0.01, else refused."""
    if value % D("0.01"):
        raise OrderRejected(f"{field} {value} is off the step")
    return value


@pytest.mark.parametrize(
    ("request_", "args"),
    [
        (request(), ("market", None, {})),
        (request(time_in_force=DAY), ("market", None, {})),  # a market order's day never ends
        (
            request(LIMIT, limit_price=D("50000.5")),
            ("limit", 50000.5, {"timeInForce": "GTC"}),
        ),
        (request(LIMIT, IOC, limit_price=D(1)), ("limit", 1.0, {"timeInForce": "IOC"})),
        (request(STOP, stop_price=D(49000)), ("market", None, {"triggerPrice": 49000.0})),
        (
            request(STOP_LIMIT, limit_price=D(48900), stop_price=D(49000)),
            ("limit", 48900.0, {"triggerPrice": 49000.0, "timeInForce": "GTC"}),
        ),
        (request(MARKET, limit_price=D("1.234")), ("market", None, {})),  # a price it ignores
    ],
)
def test_order_args_are_ccxts_type_price_and_params(request_, args):
    kind, price, params = order_args(request_, SPOT, "binance", on_step)
    assert (kind, price, params) == (args[0], args[1], {"clientOrderId": "tp-1"} | args[2])


@pytest.mark.parametrize(
    ("request_", "order_types", "words"),
    [
        (request(TRAILING), SPOT, "binance does not support trailing stops"),
        (request(STOP, stop_price=D(1)), {MARKET, LIMIT}, "binance does not support stop orders"),
        (request(quantity="0"), SPOT, "binance: quantity must be positive (got 0)"),
        (request(LIMIT, limit_price=D("1.001")), SPOT, "limit price 1.001 is off the step"),
        (request(STOP, stop_price=D("1.001")), SPOT, "stop price 1.001 is off the step"),
        (
            request(LIMIT, DAY, limit_price=D(1)),
            SPOT,
            "binance: time in force day is not supported (it takes: fok, gtc, ioc)",
        ),
        (request(MARKET, OPG), SPOT, "time in force opg is not supported"),
    ],
)
def test_what_cannot_be_sent_is_refused_with_the_reason(request_, order_types, words):
    with pytest.raises(OrderRejected) as refused:
        order_args(request_, order_types, "binance", on_step)
    assert words in str(refused.value)


@pytest.mark.parametrize(
    ("order", "order_type"),
    [
        ({"type": "market"}, MARKET),
        ({"type": "limit", "triggerPrice": None}, LIMIT),
        ({"type": "market", "triggerPrice": 49000.0}, STOP),
        ({"type": "limit", "stopPrice": 49000.0}, STOP_LIMIT),
        ({"type": "limit_maker"}, None),
    ],
)
def test_an_orders_type_is_read_from_its_type_and_trigger(order, order_type):
    assert order_type_of(order) is order_type


@pytest.mark.parametrize(
    ("order", "status", "filled"),
    [
        ({"status": "open", "filled": 0.0}, OrderStatus.ACCEPTED, D(0)),
        ({"status": "open", "filled": 0.004}, OrderStatus.PARTIALLY_FILLED, D("0.004")),
        ({"status": "closed", "filled": 0.01}, OrderStatus.FILLED, D("0.01")),
        ({"status": "canceled", "filled": 0.004}, OrderStatus.CANCELED, D("0.004")),
        ({"status": "expired", "filled": None}, OrderStatus.EXPIRED, D(0)),
        ({"status": "rejected"}, OrderStatus.REJECTED, D(0)),
        ({"status": None}, OrderStatus.UNKNOWN, D(0)),
    ],
)
def test_ccxts_statuses_map_to_ours_and_an_open_order_with_fills_is_partly_filled(
    order, status, filled
):
    assert status_of(order) == (status, filled)


ORDER = {
    "id": "1001",
    "clientOrderId": "tp-1",
    "symbol": "BTC/USDT",
    "type": "limit",
    "side": "buy",
    "price": 50000.0,
    "triggerPrice": None,
    "amount": 0.01,
    "filled": 0.01,
    "average": 49990.0,
    "status": "closed",
    "timestamp": 1714564800000,
    "lastTradeTimestamp": 1714564801000,
    "trades": [],
}


def test_a_ccxt_order_reads_as_our_order_state():
    state = to_order_state(ORDER, "tp-1", "BTCUSDT", (), "binance")
    assert (state.client_order_id, state.status, state.broker_order_id) == (
        "tp-1",
        OrderStatus.FILLED,
        "1001",
    )
    assert (state.filled_quantity, state.average_fill_price) == (D("0.01"), D(49990))
    assert (state.ticker, state.side, state.quantity) == ("BTCUSDT", Side.BUY, D("0.01"))
    assert (state.order_type, state.limit_price, state.stop_price) == (LIMIT, D(50000), None)
    assert state.message is None


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"filled": 0.0}, {"average_fill_price": None}),  # no fills, no average
        ({"type": "market", "price": 50010.0}, {"limit_price": None}),  # a market has none
        (
            {"type": "market", "triggerPrice": 49000.0},
            {"order_type": STOP, "limit_price": None, "stop_price": D(49000)},
        ),
        ({"side": None}, {"side": None}),
        ({"status": "rejected"}, {"message": "binance status rejected"}),
    ],
)
def test_order_state_fields_follow_the_orders_kind(changes, expected):
    state = to_order_state(ORDER | changes, "tp-1", "BTCUSDT", (), "binance")
    assert {name: getattr(state, name) for name in expected} == expected


TRADE = {"id": "7001", "amount": 0.006, "price": 49980.0, "timestamp": 1714564802000}


@pytest.mark.parametrize(
    ("order", "trades", "covered"),
    [
        (ORDER | {"trades": [TRADE, TRADE | {"id": "7002", "amount": 0.004}]}, 2, True),
        (ORDER | {"trades": [TRADE, TRADE | {"id": None, "amount": 0.004}]}, 1, False),
        (ORDER | {"trades": None}, 0, False),
        (ORDER | {"filled": 0.0, "trades": []}, 0, True),
    ],
)
def test_the_trades_an_answer_carries_are_those_with_ids(order, trades, covered):
    found = trades_of(order)
    assert len(found) == trades
    assert covers(found, decimal(order["filled"])) is covered


def fills(order, trades, status=OrderStatus.FILLED, filled="0.01") -> tuple[Fill, ...]:
    return to_fills(
        order,
        trades,
        client_order_id="tp-1",
        ticker="BTCUSDT",
        side=Side.BUY,
        market_id="BTCUSDT",
        filled=D(filled),
        status=status,
        now=NOW,
    )


def at(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


@pytest.mark.parametrize(
    ("order", "trades", "expected"),
    [
        (  # trade ids are unique per market only: the market id goes in front
            ORDER,
            [TRADE, TRADE | {"id": "7002", "amount": 0.004, "price": 50000.0}],
            [
                ("BTCUSDT-7001", D("0.006"), D(49980), at(1714564802000)),
                ("BTCUSDT-7002", D("0.004"), D(50000), at(1714564802000)),
            ],
        ),
        (  # a trade without its time: the order's last trade time, else the order's
            ORDER,
            [TRADE | {"timestamp": None}],
            [("BTCUSDT-7001", D("0.006"), D(49980), at(1714564801000))],
        ),
        (
            ORDER | {"lastTradeTimestamp": None, "timestamp": None},
            [TRADE | {"timestamp": None}],
            [("BTCUSDT-7001", D("0.006"), D(49980), NOW)],
        ),
        (  # a filled order without trades: one fill at its average, now
            ORDER,
            [],
            [("BTCUSDT-order-1001", D("0.01"), D(49990), NOW)],
        ),
        (  # … at its price when it has no average
            ORDER | {"average": None},
            [],
            [("BTCUSDT-order-1001", D("0.01"), D(50000), NOW)],
        ),
    ],
)
def test_trades_become_fills_with_the_exchanges_trade_ids(order, trades, expected):
    found = fills(order, trades)
    assert [(f.fill_id, f.quantity, f.price, f.filled_at) for f in found] == expected
    assert {(f.client_order_id, f.ticker, f.side) for f in found} == {("tp-1", "BTCUSDT", Side.BUY)}


def test_a_partly_filled_order_without_trades_has_no_fills_yet():
    assert fills(ORDER | {"status": "open"}, [], OrderStatus.PARTIALLY_FILLED, "0.004") == ()


@pytest.mark.parametrize(
    ("milliseconds", "moment"),
    [(1714564800000, datetime(2024, 5, 1, 12, 0, tzinfo=UTC)), (None, NOW)],
)
def test_time_of_reads_milliseconds_as_utc_and_none_as_the_default(milliseconds, moment):
    assert time_of(milliseconds, NOW) == moment


@pytest.mark.parametrize(
    ("value", "expected"), [(0.1, D("0.1")), ("2.50", D("2.50")), (3, D(3)), (None, None)]
)
def test_decimal_goes_through_the_text_of_a_float(value, expected):
    assert decimal(value) == expected


@pytest.mark.parametrize(
    ("fee", "expected"),
    [
        ({"cost": 0.05, "currency": "USDT"}, (D("0.05"), "USDT")),
        ({"cost": 0.0, "currency": "USDT"}, (D(0), "USDT")),  # a fee of nothing is known
        (None, (None, None)),  # not reported: unknown
    ],
)
def test_a_trades_fee_is_the_fills_fee(fee, expected):
    (found,) = fills(ORDER, [TRADE | {"fee": fee}])
    assert (found.fee, found.fee_currency) == expected
