"""Event streams are not the only truth: while an account's order stream is down, its working
orders are polled over REST at a bounded rate, and the stream's health is the account's health.

Through the real alpaca-py against the fake Alpaca (tests/fakes/alpaca.py), its websocket
refusing connections (`drop_stream`); the engine with a short poll interval (a constructor
argument), and `tradepipe serve` / `status` as subprocesses with the defaults."""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.request
from decimal import Decimal

import pytest

from tests.fakes.alpaca import KEY, SECRET, FakeAlpaca, Logged
from tests.helpers import Daemon, FixedClock, free_port, tradepipe, tradepipe_json, wait_for
from tests.test_engine import Harness
from tests.test_engine import run as run_engine
from tradepipe.brokers.alpaca.broker import AlpacaBroker, stream_url_for
from tradepipe.config import AlpacaAccount
from tradepipe.config.credentials import Credentials
from tradepipe.engine import Engine

D = Decimal
INTERVAL = 0.2  # the tests' poll interval (the default is 2 s)
LOOKUPS = 3  # the tests' lookups per round (the default is 4)


@pytest.fixture
def fake():
    with FakeAlpaca() as running:
        running.set_price("AAPL", 100)
        running.set_price("MSFT", 100)
        yield running


@pytest.fixture
def engine_config(fake, tmp_path, monkeypatch):
    for name, value in fake.env.items():
        monkeypatch.setenv(name, value)
    return fake.config(tmp_path)


class Polling(Harness):
    def new_engine(self) -> Engine:
        engine = super().new_engine()
        return Engine(
            engine.config,
            engine.journal,
            engine.brokers,
            engine.clock,
            fill_poll_interval=0.01,
            stream_poll_interval=INTERVAL,
            stream_poll_lookups=LOOKUPS,
        )


def limit_buy(ticker: str, price: int, quantity: int = 5) -> dict:
    return {
        "ticker": ticker,
        "action": "buy",
        "quantity": quantity,
        "orderType": "limit",
        "limitPrice": price,
        "signalPrice": 100,
    }


def is_poll(request: Logged) -> bool:
    """A request the order poller makes: the open orders, or one order by our id."""
    if request.method != "GET":
        return False
    listing = request.path == "/v2/orders" and request.query.get("status") == "open"
    return listing or request.path == "/v2/orders:by_client_order_id"


async def until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)
    return value


def status_of(h: Harness, signal_id: int) -> str:
    (order,) = h.journal.orders(signal_id=signal_id)
    return order["status"]


# -- the stream's address ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "stream_url"),
    [
        ("https://paper-api.alpaca.markets", "wss://paper-api.alpaca.markets/stream"),
        ("https://api.alpaca.markets/", "wss://api.alpaca.markets/stream"),
        ("http://127.0.0.1:9000", "ws://127.0.0.1:9000/stream"),
        ("https://proxy.example/alpaca", "wss://proxy.example/alpaca/stream"),
        (None, None),  # alpaca-py's own, paper or live
    ],
)
def test_the_stream_url_is_the_base_urls_host_and_path_with_ws_and_stream(base_url, stream_url):
    assert stream_url_for(base_url) == stream_url


def test_with_only_base_url_the_stream_connects_to_that_host(fake):
    """The finding: `base_url` alone sent the stream to Alpaca's own host, which never answered."""
    account = AlpacaAccount(base_url=fake.url, data_url=fake.url, timeout=D(2))
    credentials = Credentials(key=KEY, secret=SECRET, source="test")

    async def main():
        broker = AlpacaBroker.from_config("alpaca", account, credentials, FixedClock())
        try:
            await broker.connect()
            assert broker.stream_health.up, broker.stream_health
        finally:
            await broker.close()

    asyncio.run(main())
    assert fake.stream_attempts == 1


# -- polling while the stream is down -----------------------------------------------------------


def test_a_fill_the_stream_never_told_is_journaled_by_polling_and_polling_stops_when_it_listens(
    fake, engine_config
):
    fake.drop_stream()  # refuses every connection from the start

    async def test(h: Harness):
        alpaca = h.engine.health()["brokers"]["alpaca"]
        assert (alpaca["state"], alpaca["stream"]["up"]) == ("degraded", False)
        assert "HTTP 503" in alpaca["stream"]["reason"]
        assert h.engine.health()["status"] == "degraded"
        (resting,) = await h.send(limit_buy("MSFT", 50))  # rests throughout
        (signal_id,) = await h.send(limit_buy("AAPL", 95))
        assert status_of(h, signal_id) == "accepted"
        fake.set_price("AAPL", 94)  # filled at Alpaca; the event is lost
        assert fake.events[-1]["event"] == "fill" and not fake.events[-1]["delivered"]
        await until(lambda: status_of(h, signal_id) == "filled", 5, "the fill journaled")
        fills = h.journal.fills(account="alpaca")
        assert [(D(f["quantity"]), D(f["price"])) for f in fills] == [(5, 95)]
        assert h.journal.position("alpaca", "AAPL")[0] == 5
        stream = h.engine.health()["brokers"]["alpaca"]["stream"]
        assert stream["polling"] and stream["polled_at"] and stream["poll_error"] is None

        fake.restore_stream()  # alpaca-py reconnects after its backoff
        await until(lambda: h.engine.health()["brokers"]["alpaca"]["stream"]["up"], 20, "up")
        alpaca = h.engine.health()["brokers"]["alpaca"]
        assert (alpaca["state"], alpaca["stream"]["polling"]) == ("ok", False)
        await asyncio.sleep(2 * INTERVAL)  # a round under way ends
        seen = len(fake.requests)
        await asyncio.sleep(5 * INTERVAL)
        assert [r for r in fake.requests[seen:] if is_poll(r)] == []
        assert status_of(h, resting) == "accepted"  # a working order it would have polled

    run_engine(engine_config, test, Polling)


def test_polling_is_bounded_per_round_and_reaches_every_order(fake, engine_config):
    """Eight orders filled while the stream is down: each round lists the open orders once and
    looks up at most LOOKUPS of those it no longer lists, in turn, until all are journaled."""
    tickers = [f"T{i}" for i in range(8)]
    for ticker in tickers:
        fake.set_price(ticker, 100)

    async def test(h: Harness):
        signal_ids = await h.send(*(limit_buy(t, 95, quantity=1) for t in tickers))
        assert {status_of(h, s) for s in signal_ids} == {"accepted"}
        fake.drop_stream()
        await until(lambda: not h.engine.health()["brokers"]["alpaca"]["stream"]["up"], 5, "down")
        seen, started = len(fake.requests), time.monotonic()
        for ticker in tickers:
            fake.set_price(ticker, 94)
        await until(
            lambda: {status_of(h, s) for s in signal_ids} == {"filled"}, 10, "all journaled"
        )
        elapsed = time.monotonic() - started
        polls = [r for r in fake.requests[seen:] if is_poll(r)]
        rounds: list[int] = []  # lookups after each listing
        for request in polls:
            if request.path == "/v2/orders":
                rounds.append(0)
            else:
                assert rounds, "a lookup before the round's listing"
                rounds[-1] += 1
        assert max(rounds) <= LOOKUPS
        assert sum(rounds) >= len(tickers)  # each order looked up (filled, no longer listed)
        assert len(rounds) >= math.ceil(len(tickers) / LOOKUPS)
        bound = (1 + LOOKUPS) * (elapsed / INTERVAL + 1)
        assert len(polls) <= bound, (len(polls), elapsed)
        at = [r.at for r in polls]  # and per second, as the fake counted them
        busiest = max(sum(1 for t in at if s <= t < s + 1) for s in at)
        assert busiest <= (1 + LOOKUPS) * (1 / INTERVAL + 1)
        fills = h.journal.fills(account="alpaca")
        assert sorted(f["ticker"] for f in fills) == tickers  # each once

    run_engine(engine_config, test, Polling)


def test_a_broker_without_a_stream_is_never_polled_and_reports_no_stream(tmp_path):
    """The paper broker has no stream: no `stream` object, the state is the REST check's."""
    from tests.helpers import write_config

    async def test(h: Harness):
        assert "stream" not in h.engine.health()["brokers"].get("paper", {})
        assert h.engine.order_poller.health() == {}
        await h.engine.order_poller.poll("paper")  # nothing to do, nothing asked

    run_engine(write_config(tmp_path), test, Polling)


# -- as the operator sees it ---------------------------------------------------------------------


def test_status_and_healthz_name_the_stream_down_while_fills_are_still_journaled(tmp_path, fake):
    """The daemon with the defaults (polling every 2 s), `base_url` only: the stream would be
    derived from it, and the fake refuses it. The fill is journaled within 5 s all the same."""
    config = fake.config(tmp_path)
    config.write_text(config.read_text().replace(f'stream_url = "{fake.stream_url}"\n', ""))
    fake.drop_stream()
    with Daemon(config, free_port(), env=fake.env) as daemon:
        assert fake.stream_attempts >= 1  # the derived address: this fake's own websocket
        sent = json.loads(
            tradepipe(
                config, "send", json.dumps(limit_buy("AAPL", 95)), "--json", "--wait", env=fake.env
            ).stdout
        )
        assert sent["signal"]["deliveries"][0]["status"] == "submitted"
        fake.set_price("AAPL", 94)
        started = time.monotonic()
        wait_for(
            lambda: [o["status"] for o in tradepipe_json(config, "orders")] == ["filled"],
            timeout=5,
            what="the fill journaled",
        )
        assert time.monotonic() - started < 5
        with urllib.request.urlopen(f"{daemon.url}/healthz", timeout=5) as response:
            health = json.loads(response.read())
        assert health["status"] == "degraded"
        alpaca = health["brokers"]["alpaca"]
        assert (alpaca["ok"], alpaca["state"]) == (True, "degraded")
        assert alpaca["stream"]["up"] is False and alpaca["stream"]["poll_interval"] == 2
        report = tradepipe_json(config, "status")
        (account,) = report["accounts"]
        assert (account["ok"], account["state"], account["stream"]["up"]) == (
            True,
            "degraded",
            False,
        )
        text = tradepipe(config, "status", env=fake.env).stdout
        assert "account alpaca (alpaca): degraded" in text
        assert "stream down since" in text and "(polling every 2 s)" in text
        assert "HTTP 503" in text



def test_config_check_fails_an_account_whose_stream_does_not_listen(tmp_path, fake):
    """REST answering is not enough for `config check`: a stream that cannot connect (a wrong
    `stream_url`, a proxy without websockets) is named, with why."""
    config = fake.config(tmp_path)
    fake.drop_stream()
    checked = tradepipe(config, "config", "check", env=fake.env, check=False)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "the order stream is not listening" in checked.stdout
    assert "HTTP 503" in checked.stdout
    fake.restore_stream()
    assert tradepipe(config, "config", "check", env=fake.env).returncode == 0
