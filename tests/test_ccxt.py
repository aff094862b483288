"""The ccxt adapter driven through the real ccxt async client against a Binance spot stub
(tests/fakes/binance.py, a loopback server that verifies signatures and keeps a book).

Assertions are on the stub's book and request log, on what the adapter answers, and, for the
engine scenarios, on tradepipe's journal."""

from __future__ import annotations

import asyncio
import contextlib
import re
from decimal import Decimal
from pathlib import Path

import pytest

from tests.fakes.binance import FakeBinance
from tests.helpers import FixedClock, write_config
from tests.test_engine import Harness as EngineHarness
from tests.test_engine import run as run_engine
from tradepipe.brokers.ccxt.broker import CcxtBroker, point_at
from tradepipe.config import CcxtAccount
from tradepipe.config.credentials import Credentials
from tradepipe.core.instruments import InstrumentKind
from tradepipe.core.model import (
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from tradepipe.engine import Engine
from tradepipe.errors import BrokerError, BrokerUnavailable, ConfigError, OrderRejected

D = Decimal
KEYS = Credentials(key="stub-key", secret="stub-secret", source="test")


@pytest.fixture
def fake():
    with FakeBinance() as stub:
        yield stub


def make_broker(fake: FakeBinance, timeout: float = 2, credentials=KEYS) -> CcxtBroker:
    account = CcxtAccount(exchange="binance", sandbox=False, base_url=fake.url, timeout=timeout)
    return CcxtBroker.from_config("binance", account, credentials, FixedClock())


@contextlib.asynccontextmanager
async def connected(
    fake: FakeBinance, timeout: float = 2, heard: list | None = None, rate_limited: bool = False
):
    broker = make_broker(fake, timeout)
    broker.poll_interval = 0.05
    # The stub has no rate limit: keep the tests fast (the poller polls 20 times a second).
    broker.exchange.enableRateLimit = rate_limited
    if heard is not None:
        broker.listen(heard.append)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


def run(test) -> None:
    asyncio.run(test())


async def eventually(check, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def order(cid: str, side=Side.BUY, quantity="0.01", ticker="BTCUSDT", **fields) -> OrderRequest:
    fields.setdefault("time_in_force", TimeInForce.GTC)
    return OrderRequest(cid, "binance", ticker, side, D(quantity), **fields)


# -- construction, markets ---------------------------------------------------------------------


def test_base_url_rewrites_the_host_of_every_api_url_and_keeps_the_path(fake):
    broker = make_broker(fake)
    urls = broker.exchange.urls["api"]
    assert urls["public"] == f"{fake.url}/api/v3"
    assert urls["private"] == f"{fake.url}/api/v3"
    assert urls["sapi"] == f"{fake.url}/sapi/v1"
    assert point_at({"a": "https://x.example/p?q=1", "b": 3}, "http://h:1") == {
        "a": "http://h:1/p?q=1",
        "b": 3,
    }
    run(broker.close)


def test_an_unknown_exchange_is_a_config_error_with_a_suggestion():
    account = CcxtAccount(exchange="binanse", sandbox=False)
    with pytest.raises(ConfigError, match='account binance: ccxt has no exchange "binanse"') as e:
        CcxtBroker.from_config("binance", account, KEYS, FixedClock())
    assert 'did you mean "binance"' in str(e.value)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"exchange": "kraken"}, 'exchange "kraken" is not verified with tradepipe yet'),
        ({"exchange": "binance", "market_type": "swap"}, 'market_type "swap" is not supported'),
    ],
)
def test_what_is_not_verified_is_refused_at_start_with_the_reason(fields, reason):
    """An unverified exchange could answer "not found" for a live order (sent twice), and
    perpetuals route stops elsewhere (an emulated stop that could not be canceled)."""
    with pytest.raises(ConfigError, match=reason):
        CcxtBroker.from_config("acct", CcxtAccount(sandbox=False, **fields), KEYS, FixedClock())


def test_network_errors_keep_the_path_and_drop_the_signed_query():
    from tradepipe.brokers.ccxt.broker import exchange_words

    error = Exception(
        "binance GET http://127.0.0.1:9/api/v3/order?symbol=BTCUSDT&AccessKeyId=KEYID&signature=ab"
    )
    assert exchange_words(error, "binance") == "GET http://127.0.0.1:9/api/v3/order"


def test_refused_credentials_name_the_account_never_the_key(fake):
    async def test():
        wrong = Credentials(key="stub-key", secret="not-the-secret", source="test")
        account = CcxtAccount(exchange="binance", sandbox=False, base_url=fake.url, timeout=2)
        broker = CcxtBroker.from_config("binance", account, wrong, FixedClock())
        try:
            with pytest.raises(BrokerError) as e:
                await broker.connect()
        finally:
            await broker.close()
        assert not isinstance(e.value, (BrokerUnavailable, OrderRejected))
        message = str(e.value)
        assert "account binance" in message and "Signature for this request is not valid" in message
        assert "not-the-secret" not in message and "stub-key" not in message

    run(test)


def test_load_markets_makes_no_private_extra_calls(fake):
    async def test():
        async with connected(fake):
            pass
        paths = {r.path for r in fake.requests}
        assert paths == {"/api/v3/exchangeInfo", "/api/v3/account"}

    run(test)


def test_tradingview_tickers_map_to_the_exchanges_markets(fake):
    async def test():
        async with connected(fake) as broker:
            for ticker in ("BTCUSDT", "BINANCE:BTCUSDT", "BTC/USDT"):
                rules = await broker.instrument(ticker)
                assert (rules.tick_size, rules.lot_size) == (D("0.01"), D("0.00001"))
                assert (rules.min_quantity, rules.min_notional) == (D("0.0001"), D(5))
                # a spot market has no contractSize: one unit is one coin (SPEC §12)
                assert (rules.kind, rules.multiplier) == (InstrumentKind.CRYPTO, D(1))
            with pytest.raises(OrderRejected, match='no spot market for "DOGEUSDT"'):
                await broker.submit(order("tp-doge", ticker="DOGEUSDT"))
            assert await broker.quote("BINANCE:ETHUSDT") == D(3000)
        assert fake.sent() == []

    run(test)


# -- request weight ------------------------------------------------------------------------------
# ccxt's costs for Binance: an all-markets open-orders call weighs 80 (cost 16); an order lookup
# 4 (0.8), a ticker 2 (0.4), a create 1 (0.2). ccxt's own throttler made each request wait out
# the previous one's cost, idle or not (0.8 s after an all-markets call).


def test_an_order_after_costly_calls_is_not_held_back_by_the_request_budget(fake):
    """Two all-markets open-orders calls, then a market order at once: ccxt's throttler served
    the order's create no sooner than (16 + 16 + 0.8 + 0.4) / 20 = 1.66 s after the first call;
    within the budget's burst it is sent at once (bound: half of that, on the stub's clock)."""

    async def test():
        async with connected(fake, rate_limited=True) as broker:
            await broker.open_orders()
            await broker.open_orders()
            await broker.submit(order("tp-quick", order_type=OrderType.MARKET))
        first = fake.sent("GET", "/api/v3/openOrders")[0]
        (create,) = fake.sent()
        assert create.at - first.at < 0.83

    run(test)


def test_a_burst_beyond_the_request_budget_is_spread_out(fake):
    """Connect (exchangeInfo and account, cost 4 each) and five all-markets open-orders calls
    (16 each) cost 88; the budget sends 60 at once and refills 19 a second, so the last call
    leaves no sooner than (88 - 60) / 19 = 1.47 s after the first request."""

    async def test():
        async with connected(fake, rate_limited=True) as broker:
            for _ in range(5):
                await broker.open_orders()
        assert [r.path for r in fake.requests][:2] == ["/api/v3/exchangeInfo", "/api/v3/account"]
        last = fake.sent("GET", "/api/v3/openOrders")[-1]
        assert last.at - fake.requests[0].at > 1.0

    run(test)


def test_accounts_of_one_exchange_share_its_per_ip_request_budget(fake):
    """Binance counts weight per IP, not per key: a second account at the same address waits
    for what the first spent. Five all-markets calls on one account (with connect: 88 of a
    60 burst, refilled at 19/s), then one more on the other: it leaves at least
    (88 + 16 - 60) / 19 = 2.3 s after the first request, where a budget of its own sent it
    at once."""

    async def test():
        async with (
            connected(fake, rate_limited=True) as first,
            connected(fake, rate_limited=True) as second,
        ):
            assert first.budget is second.budget
            for _ in range(5):
                await first.open_orders()
            await second.open_orders()
        last = fake.sent("GET", "/api/v3/openOrders")[-1]
        assert last.at - fake.requests[0].at > 1.8

    run(test)
    with FakeBinance() as elsewhere:  # another address (a testnet, a proxy): its own budget
        assert make_broker(elsewhere).budget is not make_broker(fake).budget


# -- order types ---------------------------------------------------------------------------------


def test_a_market_order_fills_at_once_with_the_exchanges_trade_ids(fake):
    async def test():
        async with connected(fake) as broker:
            state = await broker.submit(order("tp1-1-abc-e"))
        assert state.status is OrderStatus.FILLED
        assert (state.filled_quantity, state.average_fill_price) == (D("0.01"), D(50000))
        (sent,) = fake.sent()
        assert sent.params["newClientOrderId"] == "tp1-1-abc-e"  # ours, never ccxt's x-… id
        assert (sent.params["type"], sent.params["quantity"]) == ("MARKET", "0.01")
        trade = fake.order("tp1-1-abc-e").trades[0]
        assert [f.fill_id for f in state.fills] == [f"BTCUSDT-{trade['id']}"]
        assert fake.sent("GET", "/api/v3/myTrades") == []  # the create's answer had the trades
        assert fake.balance("BTC") == D("0.01") and fake.balance("USDT") == D(99500)

    run(test)


def test_a_limit_order_rests_until_the_price_crosses_it_and_the_poller_reports_the_fill(fake):
    async def test():
        heard: list[OrderState] = []
        async with connected(fake, heard=heard) as broker:
            state = await broker.submit(
                order("tp1-2-abc-e", order_type=OrderType.LIMIT, limit_price=D(49000))
            )
            assert state.status is OrderStatus.ACCEPTED
            (sent,) = fake.sent()
            assert (sent.params["type"], sent.params["price"]) == ("LIMIT", "49000")
            assert sent.params["timeInForce"] == "GTC"
            fake.set_price("BTCUSDT", 48900)
            await eventually(lambda: heard and heard[-1].status is OrderStatus.FILLED)
        filled = heard[-1]
        assert (filled.client_order_id, filled.ticker) == ("tp1-2-abc-e", "BTCUSDT")
        assert filled.fills and filled.fills[0].price == D(48900)
        trade = fake.order("tp1-2-abc-e").trades[0]
        assert [f.fill_id for f in filled.fills] == [f"BTCUSDT-{trade['id']}"]  # via myTrades

    run(test)


def test_stop_and_stop_limit_orders_are_binances_stop_loss_types(fake):
    async def test():
        async with connected(fake) as broker:
            await broker.submit(order("tp1-3-abc-e", quantity="0.02"))
            stop = order("tp1-3-abc-s", Side.SELL, order_type=OrderType.STOP, stop_price=D(48000))
            stop_limit = order(
                "tp1-3-abc-s1",
                Side.SELL,
                order_type=OrderType.STOP_LIMIT,
                stop_price=D(47000),
                limit_price=D(46900),
            )
            assert (await broker.submit(stop)).status is OrderStatus.ACCEPTED
            assert (await broker.submit(stop_limit)).status is OrderStatus.ACCEPTED
            wire = {r.params["newClientOrderId"]: r.params for r in fake.sent()}
            assert (wire["tp1-3-abc-s"]["type"], wire["tp1-3-abc-s"]["stopPrice"]) == (
                "STOP_LOSS",
                "48000",
            )
            assert wire["tp1-3-abc-s1"]["type"] == "STOP_LOSS_LIMIT"
            assert (wire["tp1-3-abc-s1"]["stopPrice"], wire["tp1-3-abc-s1"]["price"]) == (
                "47000",
                "46900",
            )
            listed = {o.client_order_id: o for o in await broker.open_orders("BTCUSDT")}
            assert (listed["tp1-3-abc-s"].order_type, listed["tp1-3-abc-s"].stop_price) == (
                OrderType.STOP,
                D(48000),
            )
            assert listed["tp1-3-abc-s1"].order_type is OrderType.STOP_LIMIT
            assert listed["tp1-3-abc-s1"].limit_price == D(46900)
            fake.set_price("BTCUSDT", 46950)
            for cid in ("tp1-3-abc-s", "tp1-3-abc-s1"):
                assert (await broker.get_order(cid)).status is OrderStatus.FILLED
        assert fake.balance("BTC") == 0

    run(test)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"order_type": OrderType.TRAILING_STOP, "trail_percent": D(2)},
            "binance does not support trailing stops",
        ),
        (
            {
                "order_type": OrderType.LIMIT,
                "limit_price": D(49000),
                "time_in_force": TimeInForce.DAY,
            },
            "time in force day is not supported (it takes: fok, gtc, ioc)",
        ),
        ({"quantity": D("0.000015")}, "quantity 0.000015 of BTC/USDT is not a multiple of the"),
        (
            {"order_type": OrderType.LIMIT, "limit_price": D("49000.005")},
            "limit price 49000.005 of BTC/USDT is not a multiple of the market's step 0.01",
        ),
        ({"quantity": D("0.00005")}, "quantity 0.00005 of BTC/USDT is below the market's minimum"),
        (
            {"quantity": D("0.0001"), "order_type": OrderType.LIMIT, "limit_price": D(40000)},
            "order value 4 USDT of BTC/USDT is below the market's minimum notional 5",
        ),
    ],
    ids=["trailing", "day", "off-step", "off-tick", "min-quantity", "min-notional"],
)
def test_what_the_exchange_would_refuse_is_refused_before_sending(fake, fields, reason):
    async def test():
        async with connected(fake) as broker:
            request = order("tp1-4-abc-e")
            values = {slot: getattr(request, slot) for slot in OrderRequest.__slots__} | fields
            with pytest.raises(OrderRejected, match=re.escape(reason)):
                await broker.submit(OrderRequest(**values))
        assert fake.sent() == []  # nothing reached the exchange

    run(test)


def test_an_order_on_the_step_is_sent_exactly_as_recorded(fake):
    async def test():
        async with connected(fake) as broker:
            state = await broker.submit(
                order(
                    "tp1-5-abc-e",
                    quantity="0.01234",
                    order_type=OrderType.LIMIT,
                    limit_price=D("48123.45"),
                )
            )
        (sent,) = fake.sent()
        assert (D(sent.params["quantity"]), D(sent.params["price"])) == (
            D("0.01234"),
            D("48123.45"),
        )
        assert (state.quantity, state.limit_price) == (D("0.01234"), D("48123.45"))

    run(test)


def test_a_market_order_with_day_is_taken_a_resting_one_is_not(fake):
    async def test():
        async with connected(fake) as broker:
            market = order("tp1-e-abc-x", time_in_force=TimeInForce.DAY)  # what flatten sends
            assert (await broker.submit(market)).status is OrderStatus.FILLED
            (sent,) = fake.sent()
            assert "timeInForce" not in sent.params
            resting = order(
                "tp1-e-abc-y",
                time_in_force=TimeInForce.DAY,
                order_type=OrderType.LIMIT,
                limit_price=D(40000),
            )
            with pytest.raises(OrderRejected, match="time in force day is not supported"):
                await broker.submit(resting)
        assert len(fake.sent()) == 1

    run(test)


def test_a_spot_sell_beyond_the_balance_is_refused_in_binances_words(fake):
    async def test():
        async with connected(fake) as broker:
            with pytest.raises(OrderRejected) as e:
                await broker.submit(order("tp1-6-abc-e", Side.SELL))
        assert str(e.value) == "binance: Account has insufficient balance for requested action."
        assert fake.order("tp1-6-abc-e") is None
        # Planning never asks for it: the engine reads this (support.py).
        assert not make_broker(fake).capabilities.short_selling

    run(test)


# -- idempotency, rejections, lost answers ---------------------------------------------------------


def test_a_client_id_the_exchange_has_is_answered_by_lookup_and_sent_once(fake):
    async def test():
        async with connected(fake) as broker:
            first = await broker.submit(order("tp1-7-abc-e"))
        # A new process (a restart) submits the same id again: Binance would take a second
        # order, as its duplicate check covers open orders only. The lookup finds the first.
        async with connected(fake) as broker:
            again = await broker.submit(order("tp1-7-abc-e"))
            limit = order(
                "tp1-7-abc-t", Side.SELL, order_type=OrderType.LIMIT, limit_price=D(60000)
            )
            await broker.submit(limit)
            assert (await broker.submit(limit)).status is OrderStatus.ACCEPTED
        assert again.status is OrderStatus.FILLED
        assert [(f.fill_id, f.quantity, f.price) for f in again.fills] == [
            (f.fill_id, f.quantity, f.price) for f in first.fills
        ]
        assert [r.params["newClientOrderId"] for r in fake.sent()] == ["tp1-7-abc-e", "tp1-7-abc-t"]
        assert fake.balance("BTC") == D("0.01")

    run(test)


def test_a_rejection_carries_binances_own_words(fake):
    async def test():
        fake.reject_next("Account has insufficient balance for requested action.")
        async with connected(fake) as broker:
            with pytest.raises(OrderRejected) as e:
                await broker.submit(order("tp1-8-abc-e"))
            assert await broker.get_order("tp1-8-abc-e") is None  # Binance: -2013, unknown
        assert str(e.value) == "binance: Account has insufficient balance for requested action."

    run(test)


def test_a_lost_answer_is_unavailable_then_found_by_its_id_without_a_second_order(fake):
    async def test():
        fake.stall_next()
        async with connected(fake, timeout=0.5) as broker:
            with pytest.raises(BrokerUnavailable, match="RequestTimeout"):
                await broker.submit(order("tp1-9-abc-e"))
            found = await broker.get_order("tp1-9-abc-e")
            assert found is not None and found.status is OrderStatus.FILLED
            assert (await broker.submit(order("tp1-9-abc-e"))).status is OrderStatus.FILLED
        assert len(fake.sent()) == 1  # no blind retry, and the engine's retry sent nothing

    run(test)


def test_an_unreachable_exchange_is_unavailable(fake):
    async def test():
        async with connected(fake) as broker:
            fake.down = True
            with pytest.raises(BrokerUnavailable, match="ExchangeNotAvailable"):
                await broker.quote("BTCUSDT")
            fake.down = False

    run(test)


def test_a_fill_while_the_exchange_is_down_is_reported_when_it_is_back(fake):
    async def test():
        heard: list[OrderState] = []
        async with connected(fake, heard=heard) as broker:
            await broker.submit(
                order("tp1-a-abc-e", order_type=OrderType.LIMIT, limit_price=D(49000))
            )
            fake.down = True
            fake.set_price("BTCUSDT", 48000)
            polls = len(fake.sent("GET", "/api/v3/openOrders"))
            await eventually(lambda: len(fake.sent("GET", "/api/v3/openOrders")) > polls + 2)
            assert not any(s.status is OrderStatus.FILLED for s in heard)
            fake.down = False
            await eventually(lambda: heard and heard[-1].status is OrderStatus.FILLED)
        assert heard[-1].fills[0].fill_id.startswith("BTCUSDT-")
        assert heard[-1].filled_quantity == D("0.01")

    run(test)


# -- account, open orders, cancel, replace ---------------------------------------------------------


def test_balances_are_positions_and_cash_is_not(fake):
    async def test():
        async with connected(fake) as broker:
            await broker.submit(order("tp1-b-abc-e", quantity="0.02"))
            await broker.submit(order("tp1-b-abc-f", ticker="ETHUSDT", quantity="0.5"))
            assert sorted(await broker.positions(), key=lambda p: p.ticker) == [
                Position("BTCUSDT", D("0.02")),
                Position("ETHUSDT", D("0.5")),
            ]
            assert await broker.position("BTCUSDT") == Position("BTCUSDT", D("0.02"))
            balances_before = len(fake.sent("GET", "/api/v3/account"))
            summary = await broker.account()
            assert len(fake.sent("GET", "/api/v3/account")) == balances_before + 1  # one read
        assert summary.cash == D(100000) - D(1000) - D(1500)
        assert summary.equity == D(100000)

    run(test)


def test_open_orders_cancel_and_replace(fake):
    async def test():
        async with connected(fake) as broker:
            await broker.submit(
                order("tp1-c-abc-e", order_type=OrderType.LIMIT, limit_price=D(49000))
            )
            await broker.submit(
                order(
                    "tp1-c-abc-f",
                    ticker="ETHUSDT",
                    quantity="1",
                    order_type=OrderType.LIMIT,
                    limit_price=D(2900),
                )
            )
            everything = await broker.open_orders()
            assert sorted((o.client_order_id, o.ticker) for o in everything) == [
                ("tp1-c-abc-e", "BTCUSDT"),
                ("tp1-c-abc-f", "ETHUSDT"),
            ]
            (eth,) = await broker.open_orders("ETHUSDT")
            assert (eth.side, eth.quantity, eth.limit_price) == (Side.BUY, D(1), D(2900))
            new = order("tp1-c-abc-g", order_type=OrderType.LIMIT, limit_price=D(48000))
            assert (await broker.replace("tp1-c-abc-e", new)).status is OrderStatus.ACCEPTED
            assert (await broker.get_order("tp1-c-abc-e")).status is OrderStatus.CANCELED
            canceled = await broker.cancel("tp1-c-abc-f")
            assert canceled.client_order_id == "tp1-c-abc-f"  # not the cancel request's id
            assert canceled.status is OrderStatus.CANCELED
            with pytest.raises(OrderRejected, match="tp1-c-abc-f is canceled: nothing to replace"):
                await broker.replace("tp1-c-abc-f", order("tp1-c-abc-h"))
        assert [o.client_order_id for o in fake.open_orders()] == ["tp1-c-abc-g"]
        assert fake.balance("USDT") == D(100000)

    run(test)


def test_an_order_of_an_unknown_market_is_not_called_unknown(fake):
    async def test():
        async with connected(fake) as broker:
            with pytest.raises(BrokerUnavailable, match="its market is not known"):
                await broker.get_order("tp1-d-abc-e")

    run(test)


def test_after_a_restart_an_order_is_found_through_the_ticker_the_engine_gives(fake):
    """A fresh adapter (a restarted daemon) knows no order's market; the engine names the
    ticker, so a filled order is found and a never-sent one is answered None, not 'unknown'."""

    async def test():
        fake.set_price("ETHUSDT", 2000)
        async with connected(fake) as first:
            await first.submit(order("tp1-r-abc-e", ticker="ETHUSDT", quantity="0.5"))
        async with connected(fake) as restarted:
            found = await restarted.get_order("tp1-r-abc-e", ticker="ETHUSDT")
            assert found is not None and found.status is OrderStatus.FILLED
            assert found.filled_quantity == D("0.5")
            assert await restarted.get_order("tp1-never-abc-e", ticker="ETHUSDT") is None

    run(test)


# -- through the engine --------------------------------------------------------------------------


def binance_config(tmp_path: Path, fake: FakeBinance, subscription: str = "") -> Path:
    return write_config(
        tmp_path,
        subscription="enabled = false\n",
        extra=f"""
        [accounts.binance]
        broker = "ccxt"
        exchange = "binance"
        sandbox = false
        base_url = "{fake.url}"
        timeout = 2

        [subscriptions.trend-binance]
        strategy = "trend"
        account = "binance"
        fractional = true
        time_in_force = "gtc"
        """
        + subscription,
    )


class Harness(EngineHarness):
    """The engine harness (signals journaled as the webhook does) whose only broker is the
    ccxt adapter talking to the stub, polling fast."""

    def new_engine(self) -> Engine:
        self.broker = CcxtBroker.from_config(
            "binance", self.config.accounts["binance"], KEYS, self.clock
        )
        self.broker.poll_interval = 0.05
        self.broker.exchange.enableRateLimit = False
        return Engine(
            self.config, self.journal, {"binance": self.broker}, self.clock, fill_poll_interval=0.02
        )

    async def send(self, payload: dict) -> int:  # type: ignore[override]
        (signal_id,) = await super().send(payload)
        return signal_id

    def legs(self, signal_id: int) -> dict[str, dict]:
        return {o["role"]: o for o in self.journal.orders(signal_id=signal_id)}

    def delivery(self, signal_id: int) -> tuple[str, str]:
        (d,) = self.journal.deliveries_for([signal_id])
        return d["status"], d["reason"]


def with_engine(tmp_path, fake, test, subscription: str = "") -> None:
    run_engine(binance_config(tmp_path, fake, subscription), test, Harness)


BUY = {"ticker": "BTCUSDT", "action": "buy", "quantity": 0.01}


def test_engine_journals_a_rejection_in_binances_own_words(tmp_path, fake):
    async def test(h: Harness):
        fake.reject_next("Account has insufficient balance for requested action.")
        signal_id = await h.send(BUY)
        status, reason = h.delivery(signal_id)
        assert status == "rejected"
        assert "Account has insufficient balance for requested action." in reason
        assert h.legs(signal_id)["entry"]["broker_message"] == (
            "binance: Account has insufficient balance for requested action."
        )

    with_engine(tmp_path, fake, test)


def test_engine_entry_then_exit_and_a_sell_when_flat_opens_no_short(tmp_path, fake):
    async def test(h: Harness):
        buy = await h.send(BUY)
        assert h.delivery(buy)[0] == "submitted"
        entry = h.legs(buy)["entry"]
        assert (entry["status"], entry["filled_quantity"]) == ("filled", "0.01")
        assert h.journal.position("binance", "BTCUSDT")[0] == D("0.01")
        exit_ = await h.send({"ticker": "BTCUSDT", "action": "exit"})
        assert h.delivery(exit_)[0] == "submitted"
        assert fake.balance("BTC") == 0
        sell = await h.send({"ticker": "BTCUSDT", "action": "sell", "quantity": 0.01})
        status, reason = h.delivery(sell)
        # The engine reads `capabilities.short_selling` (support.py); the adapter would refuse too.
        assert (status, reason) == ("rejected", "broker binance does not allow short selling")
        assert len(fake.sent()) == 2  # the entry and the exit; the short never left

    with_engine(tmp_path, fake, test)


def test_engine_emulated_bracket_on_binance_spot(tmp_path, fake):
    """On Binance spot each open sell reserves what it sells: a take-profit and a stop-loss
    cannot rest on one balance, so a bracket with both legs is refused before anything is sent
    (never an entry left with a take-profit and no stop). With one leg, the emulation places it
    once the entry fills, and the poller reports its fill."""

    async def test(h: Harness):
        both = {**BUY, "takeProfit": {"limitPrice": 52000}, "stopLoss": {"stopPrice": 48000}}
        refused = await h.send(both)
        status, reason = h.delivery(refused)
        assert status == "rejected"
        assert "a take-profit and a stop-loss cannot both protect it" in reason
        assert fake.sent() == [] and h.legs(refused) == {}

        signal_id = await h.send({**BUY, "takeProfit": {"limitPrice": 52000}})
        assert h.delivery(signal_id)[0] == "submitted"
        legs = h.legs(signal_id)
        assert legs["entry"]["status"] == "filled"
        assert legs["take_profit"]["status"] == "accepted"
        assert [(o.type, o.price) for o in fake.open_orders()] == [("LIMIT", D(52000))]
        fake.set_price("BTCUSDT", 52100)
        await eventually(lambda: h.legs(signal_id)["take_profit"]["status"] == "filled")
        await h.engine.drain()
        assert h.journal.position("binance", "BTCUSDT")[0] == 0
        assert fake.balance("BTC") == 0 and fake.open_orders() == []

    with_engine(tmp_path, fake, test)
