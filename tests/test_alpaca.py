"""The Alpaca adapter, driven through the real alpaca-py against a fake Alpaca on a loopback
port (tests/fakes/alpaca.py): orders, brackets, lost answers, refusals, the stream and its gaps.

Assertions read the fake's books and request log, and what the adapter reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest
from alpaca.common.rest import RESTClient
from alpaca.trading.client import TradingClient
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.stream import TradingStream

from tests.fakes.alpaca import KEY, SECRET, FakeAlpaca
from tests.helpers import FixedClock
from tests.test_engine import run as run_engine
from tradepipe.brokers.alpaca.broker import AlpacaBroker
from tradepipe.config import AlpacaAccount
from tradepipe.config.credentials import Credentials
from tradepipe.core.model import (
    OrderRequest,
    OrderRole,
    OrderState,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from tradepipe.errors import BrokerError, BrokerUnavailable, OrderRejected

D = Decimal


@pytest.fixture
def fake():
    with FakeAlpaca() as running:
        running.set_price("AAPL", 100)
        yield running


def make_broker(fake: FakeAlpaca, *, timeout: float = 2, secret: str = SECRET) -> AlpacaBroker:
    account = AlpacaAccount(
        base_url=fake.url, stream_url=fake.stream_url, data_url=fake.url, timeout=D(str(timeout))
    )
    credentials = Credentials(key=KEY, secret=secret, source="test")
    return AlpacaBroker.from_config("alpaca", account, credentials, FixedClock())


class Heard(list):
    """What the adapter's stream reported, in order."""

    async def wait_for(self, done: Callable[[OrderState], bool], timeout: float = 5) -> OrderState:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for state in self:
                if done(state):
                    return state
            await asyncio.sleep(0.02)
        raise AssertionError(f"not heard within {timeout} s; heard {self!r}")


def run(fake: FakeAlpaca, test: Callable[[AlpacaBroker, Heard], Awaitable[None]], **kw) -> None:
    async def main() -> None:
        broker = make_broker(fake, **kw)
        heard = Heard()
        broker.listen(heard.append)
        await broker.connect()
        try:
            await test(broker, heard)
        finally:
            await broker.close()

    asyncio.run(main())


def order(cid: str = "tp0001-1-abc123-e", **fields) -> OrderRequest:
    values = {
        "client_order_id": cid,
        "account": "alpaca",
        "ticker": "AAPL",
        "side": Side.BUY,
        "quantity": D(10),
    }
    return OrderRequest(**(values | fields))


# -- each order type ---------------------------------------------------------------------------


def test_market_order_fills_at_the_price_under_our_client_id(fake):
    async def test(broker, heard):
        state = await broker.submit(order())
        assert (state.client_order_id, state.status, state.filled_quantity) == (
            "tp0001-1-abc123-e",
            OrderStatus.FILLED,
            10,
        )
        assert state.average_fill_price == 100
        (fill,) = state.fills
        assert (fill.quantity, fill.price, fill.side, fill.ticker) == (10, 100, Side.BUY, "AAPL")
        assert fake.order("tp0001-1-abc123-e").status == "filled"
        assert fake.position("AAPL") == 10
        streamed = await heard.wait_for(lambda s: s.status is OrderStatus.FILLED)
        assert streamed.ticker == "AAPL"
        assert [f.fill_id for f in streamed.fills] == [fill.fill_id]  # one fill, one id

    run(fake, test)


@pytest.mark.parametrize(
    ("fields", "wire"),
    [
        ({"order_type": OrderType.LIMIT, "limit_price": D("99.5")}, {"limit_price": 99.5}),
        ({"order_type": OrderType.STOP, "stop_price": D(105)}, {"stop_price": 105.0}),
        (
            {"order_type": OrderType.STOP_LIMIT, "stop_price": D(105), "limit_price": D("105.5")},
            {"stop_price": 105.0, "limit_price": 105.5},
        ),
        (
            {"order_type": OrderType.TRAILING_STOP, "side": Side.SELL, "trail_amount": D("2.5")},
            {"trail_price": 2.5},
        ),
        (
            {"order_type": OrderType.TRAILING_STOP, "side": Side.SELL, "trail_percent": D(3)},
            {"trail_percent": 3.0},
        ),
    ],
    ids=["limit", "stop", "stop_limit", "trailing-amount", "trailing-percent"],
)
def test_each_order_type_goes_out_as_alpaca_takes_it_and_rests(fake, fields, wire):
    async def test(broker, heard):
        request = order(time_in_force=TimeInForce.GTC, **fields)
        state = await broker.submit(request)
        assert state.status is OrderStatus.ACCEPTED
        assert state.order_type is request.order_type
        (sent,) = fake.sent()
        assert sent.body["type"] == str(request.order_type)
        assert sent.body["time_in_force"] == "gtc"
        assert sent.body["client_order_id"] == request.client_order_id
        assert {k: sent.body[k] for k in wire} == wire
        assert fake.order(request.client_order_id).status == "new"

    run(fake, test)


def test_resting_orders_fill_when_the_price_crosses_and_the_stream_says_so(fake):
    async def test(broker, heard):
        await broker.submit(
            order("tp0001-1-abc123-x", order_type=OrderType.LIMIT, limit_price=D(95))
        )
        trail = order(
            "tp0001-2-abc123-x",
            side=Side.SELL,
            quantity=D(5),
            order_type=OrderType.TRAILING_STOP,
            trail_amount=D(2),
        )
        await broker.submit(trail)
        fake.set_price("AAPL", 94)  # the limit fills at its price; the trail's low is 94... a sell
        limit = await heard.wait_for(
            lambda s: s.client_order_id == "tp0001-1-abc123-x" and s.status is OrderStatus.FILLED
        )
        assert (limit.average_fill_price, limit.fills[0].price) == (95, 95)
        trailed = await heard.wait_for(
            lambda s: s.client_order_id == "tp0001-2-abc123-x" and s.status is OrderStatus.FILLED
        )
        assert trailed.fills[0].quantity == 5
        assert fake.position("AAPL") == 5

    run(fake, test)


def test_extended_hours_and_fractional_orders_alpaca_refuses_are_refused_before_sending(fake):
    async def test(broker, heard):
        with pytest.raises(OrderRejected, match="extended hours take limit day orders only"):
            await broker.submit(order(extended_hours=True))
        with pytest.raises(OrderRejected, match=r"fractional quantity 1\.5 .* market day"):
            await broker.submit(
                order(quantity=D("1.5"), order_type=OrderType.LIMIT, limit_price=D(99))
            )
        assert fake.sent() == []
        ext = await broker.submit(
            order(extended_hours=True, order_type=OrderType.LIMIT, limit_price=D(99))
        )
        assert ext.status is OrderStatus.ACCEPTED
        assert fake.sent()[0].body["extended_hours"] is True
        fractional = await broker.submit(order("tp0001-2-abc123-e", quantity=D("0.25")))
        assert fractional.filled_quantity == D("0.25")

    run(fake, test)


# -- brackets ------------------------------------------------------------------------------------


def bracket() -> tuple[OrderRequest, list[OrderRequest]]:
    entry = order("tp0001-7-abc123-e", order_type=OrderType.LIMIT, limit_price=D(99))
    take_profit = order(
        "tp0001-7-abc123-t",
        side=Side.SELL,
        role=OrderRole.TAKE_PROFIT,
        order_type=OrderType.LIMIT,
        limit_price=D(110),
    )
    stop_loss = order(
        "tp0001-7-abc123-s",
        side=Side.SELL,
        role=OrderRole.STOP_LOSS,
        order_type=OrderType.STOP,
        stop_price=D(95),
    )
    return entry, [take_profit, stop_loss]


def test_a_bracket_sent_again_is_answered_from_the_broker_not_placed_twice(fake):
    async def test(broker, heard):
        entry, children = bracket()
        first = await broker.submit_bracket(entry, children)
        again = await broker.submit_bracket(entry, children)
        assert [s.client_order_id for s in again] == [s.client_order_id for s in first]
        # Alpaca refuses the second POST (duplicate client_order_id): one bracket there.
        assert len(fake.orders_of("AAPL")) == 3

    run(fake, test)


def test_bracket_legs_live_after_the_entry_and_one_cancels_the_other(fake):
    async def test(broker, heard):
        entry, children = bracket()
        states = await broker.submit_bracket(entry, children)
        assert [(s.client_order_id, s.status) for s in states] == [
            ("tp0001-7-abc123-e", OrderStatus.ACCEPTED),
            ("tp0001-7-abc123-t", OrderStatus.ACCEPTED),
            ("tp0001-7-abc123-s", OrderStatus.ACCEPTED),
        ]
        assert states[1].message == "held until the entry fills"
        (sent,) = fake.sent()
        assert sent.body["order_class"] == "bracket"
        assert (sent.body["take_profit"], sent.body["stop_loss"]) == (
            {"limit_price": 110.0},
            {"stop_price": 95.0},
        )
        fake.set_price("AAPL", 98)  # the entry fills at its limit; the legs go live
        await heard.wait_for(lambda s: s.client_order_id == "tp0001-7-abc123-e" and s.fills)
        await heard.wait_for(
            lambda s: s.client_order_id == "tp0001-7-abc123-s" and s.message is None
        )
        open_ids = {s.client_order_id for s in await broker.open_orders("AAPL")}
        assert open_ids == {"tp0001-7-abc123-t", "tp0001-7-abc123-s"}
        fake.set_price("AAPL", 111)
        take_profit = await heard.wait_for(
            lambda s: s.client_order_id == "tp0001-7-abc123-t" and s.status is OrderStatus.FILLED
        )
        assert take_profit.fills[0].price == 110
        stop = await heard.wait_for(
            lambda s: s.client_order_id == "tp0001-7-abc123-s" and s.status is OrderStatus.CANCELED
        )
        assert stop.ticker == "AAPL"
        assert fake.position("AAPL") == 0
        # Asked by our ids, the legs answer (through their entry: Alpaca named them itself).
        found = await broker.get_order("tp0001-7-abc123-s")
        assert found.status is OrderStatus.CANCELED

    run(fake, test)


def test_one_child_goes_as_oto_and_a_leg_alpaca_cannot_take_is_refused(fake):
    async def test(broker, heard):
        entry, (_, stop_loss) = bracket()
        states = await broker.submit_bracket(entry, [stop_loss])
        assert fake.sent()[0].body["order_class"] == "oto"
        assert [s.client_order_id for s in states] == ["tp0001-7-abc123-e", "tp0001-7-abc123-s"]
        trailing = order(
            "tp0001-8-abc123-s",
            side=Side.SELL,
            role=OrderRole.STOP_LOSS,
            order_type=OrderType.TRAILING_STOP,
            trail_percent=D(2),
        )
        with pytest.raises(OrderRejected, match="stop_loss is stop or stop_limit"):
            await broker.submit_bracket(order("tp0001-8-abc123-e"), [trailing])
        assert len(fake.sent()) == 1

    run(fake, test)


# -- idempotency, refusals, lost answers ---------------------------------------------------------


def test_a_duplicate_client_id_is_settled_by_lookup_and_sends_one_order(fake):
    async def test(broker, heard):
        first = await broker.submit(order())
        again = await broker.submit(order())
        assert again.broker_order_id == first.broker_order_id
        assert again.status is OrderStatus.FILLED
        assert [f.fill_id for f in again.fills] == [f.fill_id for f in first.fills]
        assert len(fake.orders_of("AAPL")) == 1
        assert fake.position("AAPL") == 10
        assert len(fake.sent()) == 2  # the second was refused with 422 …
        assert fake.sent("GET", "/v2/orders:by_client_order_id")  # … and looked up

    run(fake, test)


def test_a_refusal_carries_alpacas_own_message(fake):
    async def test(broker, heard):
        fake.reject_next(
            "potential wash trade detected. use complex orders", status=403, code=40310000
        )
        with pytest.raises(OrderRejected, match=r"^potential wash trade detected"):
            await broker.submit(order())
        with pytest.raises(OrderRejected, match=r"^insufficient buying power$"):
            await broker.submit(order("tp0001-2-abc123-e", quantity=D(5000)))
        assert fake.orders == {}

    run(fake, test)


def test_sub_penny_prices_are_refused_before_sending(fake):
    async def test(broker, heard):
        with pytest.raises(OrderRejected) as refused:
            await broker.submit(order(order_type=OrderType.LIMIT, limit_price=D("100.123")))
        assert "limit_price 100.123" in str(refused.value)
        assert "0.01" in str(refused.value)
        with pytest.raises(OrderRejected, match=r"stop_price 0\.12345 .* 0\.0001"):
            await broker.submit(order(order_type=OrderType.STOP, stop_price=D("0.12345")))
        assert fake.sent() == []  # nothing reached Alpaca
        cheap = await broker.submit(order(order_type=OrderType.LIMIT, limit_price=D("0.1234")))
        assert cheap.limit_price == D("0.1234")

    run(fake, test)


def test_the_fake_refuses_sub_penny_prices_as_alpaca_does(fake):
    """What the adapter refuses first, the fake would refuse too (so the test above proves
    something): alpaca-py straight to the fake, no adapter."""
    from alpaca.common.exceptions import APIError
    from alpaca.trading.requests import LimitOrderRequest

    client = TradingClient(KEY, SECRET, url_override=fake.url, raw_data=True)
    with pytest.raises(APIError) as refused:
        client.submit_order(
            LimitOrderRequest(
                symbol="AAPL", qty=1, side="buy", time_in_force="day", limit_price=100.123
            )
        )
    assert (refused.value.status_code, refused.value.code) == (422, 42210000)
    assert "sub-penny increment" in refused.value.message


def test_a_stalled_answer_times_out_and_the_order_is_then_found_by_its_id(fake):
    async def test(broker, heard):
        fake.stall_next()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match=r"no answer within 0\.5 s"):
            await broker.submit(order())
        assert time.monotonic() - started < 2
        found = await broker.get_order("tp0001-1-abc123-e")
        assert found is not None and found.status is OrderStatus.FILLED
        assert len(fake.sent()) == 1
        assert await broker.get_order("tp0001-9-abc123-e") is None

    run(fake, test, timeout=0.5)


def test_a_504_is_not_retried_by_alpaca_py(fake):
    async def test(broker, heard):
        fake.fail_next(504)
        with pytest.raises(BrokerUnavailable, match="HTTP 504"):
            await broker.submit(order())
        assert len(fake.sent()) == 1  # alpaca-py would have sent it three more times

    run(fake, test)


def test_alpaca_py_private_names_the_adapter_relies_on_still_exist(fake):
    """Canary: the adapter turns off retries through `_retry` / `_retry_codes`, adds a timeout
    through `_session`, and runs / watches the stream through `_run_forever`, `_auth` and
    `_dispatch`. If alpaca-py renames any of them, this fails before money does."""
    client = TradingClient(KEY, SECRET, url_override=fake.url, raw_data=True)
    assert isinstance(client._retry, int) and client._retry == 3
    assert client._retry_codes == [429, 504]
    assert client._session is not None
    assert "self._session.request" in _source(RESTClient._one_request)
    assert "while retry >= 0" in _source(RESTClient._request)
    for name in ("_run_forever", "_auth", "_dispatch", "stop_ws", "close"):
        assert callable(getattr(TradingStream, name))
    assert '"listening"' not in _source(TradingStream._dispatch)  # we watch for it ourselves
    assert "_dispatch(msg)" in _source(TradingStream._consume)


def _source(function) -> str:
    import inspect

    return inspect.getsource(function)


def test_refused_credentials_name_the_account_and_never_the_key(fake):
    async def main():
        broker = make_broker(fake, secret="wrong-secret-value")
        with pytest.raises(BrokerError) as refused:
            await broker.connect()
        assert not isinstance(refused.value, (BrokerUnavailable, OrderRejected))
        assert "alpaca account alpaca" in str(refused.value)
        assert KEY not in str(refused.value) and "wrong-secret-value" not in str(refused.value)
        await broker.close()

    asyncio.run(main())


def test_a_stream_that_refuses_the_key_fails_connect_instead_of_retrying_forever(fake):
    fake.refuse_stream = True

    async def main():
        broker = make_broker(fake)
        started = time.monotonic()
        with pytest.raises(BrokerError, match="trade_updates stream refused the credentials"):
            await broker.connect()
        assert time.monotonic() - started < 1.5  # not the whole timeout
        await broker.close()
        fake.refuse_stream = False
        await broker.connect()  # the engine's reconnect: a new stream
        assert fake.listening == 1
        await broker.close()

    asyncio.run(main())


def test_an_unreachable_broker_is_unavailable():
    async def main():
        with FakeAlpaca() as gone:
            pass  # started and stopped: nothing listens on its port any more
        broker = make_broker(gone)
        with pytest.raises(BrokerUnavailable, match="cannot reach the broker"):
            await broker.connect()
        await broker.close()

    asyncio.run(main())


def test_fake_orders_parse_as_alpaca_py_orders(fake):
    """The fake's Order JSON carries what alpaca-py's model requires."""

    async def test(broker, heard):
        entry, children = bracket()
        await broker.submit_bracket(entry, children)

    run(fake, test)
    for kept in fake.orders.values():
        AlpacaOrder(**kept.json())


# -- the stream and its gaps ---------------------------------------------------------------------


def test_a_fill_while_the_stream_is_down_is_reported_after_it_reconnects(fake):
    async def test(broker, heard):
        await broker.submit(order(order_type=OrderType.LIMIT, limit_price=D(95)))
        fake.drop_stream()
        fake.set_price("AAPL", 94)  # fills while nobody listens
        assert fake.events[-1]["event"] == "fill" and not fake.events[-1]["delivered"]
        assert not any(s.status is OrderStatus.FILLED for s in heard)
        fake.restore_stream()  # alpaca-py reconnects after its 1 s backoff; we re-sync
        filled = await heard.wait_for(lambda s: s.status is OrderStatus.FILLED, timeout=10)
        assert (filled.client_order_id, filled.ticker, filled.filled_quantity) == (
            "tp0001-1-abc123-e",
            "AAPL",
            10,
        )
        assert [(f.quantity, f.price) for f in filled.fills] == [(10, 95)]
        deadline = time.monotonic() + 5  # the fake counts the listener a moment after acking
        while fake.listening != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert fake.listening == 1

    run(fake, test)


def test_a_fill_event_and_a_rest_answer_give_the_same_fill_id(fake):
    """The journal counts a fill once by its id: the stream and REST must agree on it."""

    async def test(broker, heard):
        await broker.submit(order(order_type=OrderType.LIMIT, limit_price=D(95)))
        fake.set_price("AAPL", 94)
        streamed = await heard.wait_for(lambda s: s.status is OrderStatus.FILLED)
        fresh = make_broker(fake)  # another process: nothing remembered
        asked = await fresh.get_order("tp0001-1-abc123-e")
        await fresh.close()
        assert [f.fill_id for f in asked.fills] == [f.fill_id for f in streamed.fills]

    run(fake, test)


def test_partial_fills_are_counted_once_whichever_way_they_are_learned(fake):
    """Fill ids are checkpoints of the filled quantity: a stream event, a REST answer and a
    re-sync after a gap name each part of an order's fills alike."""

    async def test(broker, heard):
        await broker.submit(order(order_type=OrderType.LIMIT, limit_price=D(95)))
        fake.partial_next(4)
        fake.set_price("AAPL", 94)  # 4 of 10 at 95
        part = await heard.wait_for(lambda s: s.status is OrderStatus.PARTIALLY_FILLED)
        assert [(f.quantity, f.price) for f in part.fills] == [(4, 95)]
        polled = await broker.get_order("tp0001-1-abc123-e")
        assert polled.fills == part.fills
        fake.drop_stream()
        fake.partial_next(2)
        fake.set_price("AAPL", 93)  # 2 more while the stream is down …
        fake.restore_stream()
        await heard.wait_for(lambda s: s.filled_quantity == 6, timeout=10)  # … re-synced
        fake.set_price("AAPL", 92)  # the last 4, streamed
        done = await heard.wait_for(lambda s: s.status is OrderStatus.FILLED)
        assert [(f.quantity, f.price) for f in done.fills] == [(4, 95), (2, 95), (4, 95)]
        assert len({f.fill_id for f in done.fills}) == 3
        assert sum(f.quantity for f in done.fills) == fake.position("AAPL") == 10

    run(fake, test)


# -- positions, open orders, account, quotes ------------------------------------------------------


def test_positions_open_orders_and_the_account_for_reconciliation(fake):
    async def test(broker, heard):
        fake.set_price("TSLA", 200)
        await broker.submit(order())
        await broker.submit(
            order("tp0001-2-abc123-e", ticker="TSLA", side=Side.SELL, quantity=D(3))
        )
        await broker.submit(
            order("tp0001-3-abc123-e", order_type=OrderType.LIMIT, limit_price=D(90))
        )
        await broker.submit(
            order(
                "tp0001-4-abc123-e",
                ticker="TSLA",
                side=Side.BUY,
                quantity=D(3),
                order_type=OrderType.STOP,
                stop_price=D(220),
            )
        )
        held = {(p.ticker, p.quantity, p.average_price) for p in await broker.positions()}
        assert held == {("AAPL", 10, 100), ("TSLA", -3, 200)}
        assert (await broker.position("TSLA")).quantity == -3
        assert (await broker.position("MSFT")).quantity == 0
        everything = {s.client_order_id for s in await broker.open_orders()}
        assert everything == {"tp0001-3-abc123-e", "tp0001-4-abc123-e"}
        (aapl,) = await broker.open_orders("AAPL")
        assert (aapl.side, aapl.quantity, aapl.order_type, aapl.limit_price) == (
            Side.BUY,
            10,
            OrderType.LIMIT,
            90,
        )
        summary = await broker.account()
        assert summary.cash == 100_000 - 1000 + 600
        assert summary.equity == summary.cash + 1000 - 600
        assert broker.capabilities.quotes and broker.capabilities.brackets
        assert await broker.observe_price("AAPL", D(1)) == []
        assert fake.prices["AAPL"] == 100  # a signal's price never moves Alpaca's marks

    run(fake, test)


def test_quotes_are_the_latest_trade_else_the_quote_mid(fake):
    async def test(broker, heard):
        fake.set_quote("MSFT", "10", "10.2")
        assert await broker.quote("AAPL") == 100
        assert await broker.quote("MSFT") == D("10.1")
        assert await broker.quote("NOPE") is None
        assert fake.sent("GET", "/v2/stocks/trades/latest")[0].query["symbols"] == "AAPL"

    run(fake, test)


# -- replace and cancel ---------------------------------------------------------------------------


def test_replace_puts_a_new_id_in_the_old_orders_place_once(fake):
    async def test(broker, heard):
        stop = dict(side=Side.SELL, order_type=OrderType.STOP, time_in_force=TimeInForce.GTC)
        await broker.submit(order("tp0001-1-abc123-x", stop_price=D(95), **stop))
        new = order("tp0001-2-abc123-b", stop_price=D(97), **stop)
        state = await broker.replace("tp0001-1-abc123-x", new)
        assert (state.client_order_id, state.status, state.stop_price) == (
            "tp0001-2-abc123-b",
            OrderStatus.ACCEPTED,
            97,
        )
        old = await broker.get_order("tp0001-1-abc123-x")
        assert (old.status, old.message) == (OrderStatus.CANCELED, "replaced")
        assert fake.order("tp0001-2-abc123-b").replaces == fake.order("tp0001-1-abc123-x").id
        again = await broker.replace("tp0001-1-abc123-x", new)  # a retry changes nothing
        assert again.broker_order_id == state.broker_order_id
        assert len(fake.sent("PATCH", f"/v2/orders/{fake.order('tp0001-1-abc123-x').id}")) == 1
        with pytest.raises(OrderRejected, match="is replaced: nothing to replace"):
            await broker.replace(
                "tp0001-1-abc123-x", order("tp0001-3-abc123-b", **stop, stop_price=D(98))
            )

    run(fake, test)


def test_replacing_a_bracket_stop_keeps_its_one_cancels_other_link(fake):
    async def test(broker, heard):
        entry, children = bracket()
        await broker.submit_bracket(entry, children)
        fake.set_price("AAPL", 98)  # the entry fills at 99
        fake.set_price("AAPL", 105)
        breakeven = order(
            "tp0001-9-abc123-b", side=Side.SELL, order_type=OrderType.STOP, stop_price=D(99)
        )
        state = await broker.replace("tp0001-7-abc123-s", breakeven)
        assert (state.client_order_id, state.stop_price) == ("tp0001-9-abc123-b", 99)
        assert {s.client_order_id for s in await broker.open_orders("AAPL")} == {
            "tp0001-7-abc123-t",
            "tp0001-9-abc123-b",
        }
        fake.set_price("AAPL", 110)
        moved = await heard.wait_for(
            lambda s: s.client_order_id == "tp0001-9-abc123-b" and s.status is OrderStatus.CANCELED
        )
        assert moved.ticker == "AAPL"

    run(fake, test)


def test_cancel_answers_the_orders_state(fake):
    async def test(broker, heard):
        await broker.submit(order(order_type=OrderType.LIMIT, limit_price=D(90)))
        canceled = await broker.cancel("tp0001-1-abc123-e")
        assert canceled.status is OrderStatus.CANCELED
        assert fake.order("tp0001-1-abc123-e").status == "canceled"
        await broker.submit(order("tp0001-2-abc123-e"))
        filled = await broker.cancel("tp0001-2-abc123-e")  # 422 not cancelable: its state
        assert filled.status is OrderStatus.FILLED
        assert await broker.cancel("tp0001-3-abc123-e") is None

    run(fake, test)


# -- crypto ---------------------------------------------------------------------------------------


def test_crypto_follows_the_assets_increments(fake):
    fake.add_crypto(
        "BTC/USD", min_order_size="0.0001", min_trade_increment="0.0001", price_increment="1"
    )
    fake.set_price("BTC/USD", 50000)

    async def test(broker, heard):
        rules = await broker.instrument("BTC/USD")
        assert (rules.tick_size, rules.lot_size, rules.min_quantity) == (
            1,
            D("0.0001"),
            D("0.0001"),
        )
        assert (await broker.instrument("AAPL")).tick_size is None  # SPEC §7's stock rule
        # SPEC §12: what one unit is worth — a coin and a share 1, an option contract 100
        worth = {}
        for ticker in ("BTC/USD", "AAPL", "SPY261218C00600000"):
            answer = await broker.instrument(ticker)
            worth[ticker] = (str(answer.kind), answer.multiplier)
        assert worth == {
            "BTC/USD": ("crypto", 1),
            "AAPL": ("stock", 1),
            "SPY261218C00600000": ("option", 100),
        }
        btc = dict(ticker="BTC/USD", time_in_force=TimeInForce.GTC)
        with pytest.raises(OrderRejected, match=r"quantity 0\.00005 is not a multiple of"):
            await broker.submit(order(quantity=D("0.00005"), **btc))
        with pytest.raises(OrderRejected, match=r"limit_price 50000\.5 is not a multiple of 1"):
            await broker.submit(
                order(
                    quantity=D("0.01"), order_type=OrderType.LIMIT, limit_price=D("50000.5"), **btc
                )
            )
        with pytest.raises(OrderRejected, match="crypto takes time in force gtc or ioc"):
            await broker.submit(order(quantity=D("0.01"), ticker="BTC/USD"))
        assert fake.sent() == []
        state = await broker.submit(order(quantity=D("0.01"), **btc))
        assert (state.status, state.ticker, state.filled_quantity) == (
            OrderStatus.FILLED,
            "BTC/USD",
            D("0.01"),
        )
        assert [(p.ticker, p.quantity) for p in await broker.positions()] == [
            ("BTC/USD", D("0.01"))
        ]
        assert (await broker.position("BTC/USD")).quantity == D("0.01")
        assert await broker.quote("BTC/USD") == 50000

    run(fake, test)


# -- through the engine ---------------------------------------------------------------------------


@pytest.fixture
def engine_config(fake, tmp_path, monkeypatch):
    """A config whose one account trades at the fake, its credentials in the environment."""
    for name, value in fake.env.items():
        monkeypatch.setenv(name, value)
    return fake.config(tmp_path)


def test_a_signal_becomes_an_alpaca_order_and_its_fill_is_journaled_once(fake, engine_config):
    async def test(h):
        (signal_id,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
        )
        assert h.deliveries(signal_id) == [("submitted", "enter long 5 (buy 5 AAPL)")]
        (journaled,) = h.journal.orders(signal_id=signal_id)
        sent = fake.order(journaled["client_order_id"])
        assert sent is not None and sent.status == "filled"  # our id, at Alpaca
        assert journaled["status"] == "filled"
        await asyncio.sleep(0.3)  # the stream's fill event arrives too …
        await h.engine.drain()
        fills = h.journal.fills(account="alpaca")
        assert [(D(f["quantity"]), D(f["price"])) for f in fills] == [(5, 100)]  # … counted once
        assert h.journal.position("alpaca", "AAPL")[0] == 5

    run_engine(engine_config, test)


def test_a_refused_login_on_submit_leaves_the_order_unknown_to_be_settled_by_lookup(
    fake, engine_config
):
    """Not an "internal error" with the order stuck `submitting`: the outcome is unknown, the
    delivery says which id to check, and the next lookup settles it (here: never sent)."""

    async def test(h):
        fake.fail_next(401)
        (signal_id,) = await h.send(
            {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
        )
        ((status, reason),) = h.deliveries(signal_id)
        assert status == "failed"
        assert "its state is unknown" in reason
        (journaled,) = h.journal.orders(signal_id=signal_id)
        assert journaled["status"] == "unknown"
        h.clock.advance(120)  # past the grace in which a broker may still list it
        await h.engine.settle_unknown("alpaca", "AAPL")
        (journaled,) = h.journal.orders(signal_id=signal_id)
        assert journaled["status"] == "canceled"
        assert fake.order(journaled["client_order_id"]) is None

    run_engine(engine_config, test)
