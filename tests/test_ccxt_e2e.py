"""A Binance spot account end to end, as a user runs it: `tradepipe serve` as a subprocess with
an `[accounts.binance]` table pointed at the Binance stub (tests/fakes/binance.py) in this test
process, credentials from the environment, signals through `tradepipe send --wait`, and state
read back from the stub and from `tradepipe orders/positions --json`."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.fakes.binance import FakeBinance
from tests.helpers import (
    Daemon,
    deliver,
    free_port,
    held,
    tradepipe,
    tradepipe_json,
    wait_for,
    write_config,
)

D = Decimal
ENV = {"TRADEPIPE_BINANCE_KEY": "stub-key", "TRADEPIPE_BINANCE_SECRET": "stub-secret"}


@pytest.fixture
def fake():
    with FakeBinance() as stub:
        yield stub


def binance_config(tmp_path, fake: FakeBinance, subscription: str = ""):
    return write_config(
        tmp_path,
        subscription="enabled = false\n",  # the helper's paper subscription
        extra=f"""
        [accounts.binance]
        broker = "ccxt"
        exchange = "binance"
        sandbox = false
        base_url = "{fake.url}"
        timeout = 5

        [subscriptions.trend-binance]
        strategy = "trend"
        account = "binance"
        fractional = true
        time_in_force = "gtc"
        """
        + subscription,
    )


def orders_of(config) -> dict[str, dict]:
    """The latest order of each role (the listing is newest first)."""
    found: dict[str, dict] = {}
    for order in tradepipe_json(config, "orders"):
        found.setdefault(order["role"], order)
    return found


BUY = {"ticker": "BTCUSDT", "action": "buy", "quantity": 0.01}


def test_a_session_on_binance_spot(tmp_path, fake):
    """Entry, partial exit, a sell that exits but opens no short, a sell when flat, an emulated
    bracket, a cancel and a flatten — one daemon, as a user's day goes (each CLI call costs a
    second or so: the scenarios share it)."""
    config = binance_config(tmp_path, fake)
    with Daemon(config, free_port(), env=ENV):
        # -- entry and exits
        entry = deliver(config, BUY | {"quantity": 0.02})
        assert entry["status"] == "submitted", entry
        assert fake.balance("BTC") == D("0.02")
        (position,) = tradepipe_json(config, "positions")
        assert (position["account"], position["ticker"]) == ("binance", "BTCUSDT")
        assert D(str(position["quantity"])) == D("0.02")

        partial = deliver(config, {"ticker": "BTCUSDT", "action": "exit", "quantity": 0.005})
        assert partial["status"] == "submitted", partial
        assert "partial exit of long" in partial["reason"]
        assert fake.balance("BTC") == D("0.015")

        # A sell on a long exits it; on spot it does not go on into a short.
        sell = deliver(config, {"ticker": "BTCUSDT", "action": "sell", "quantity": 0.01})
        assert sell["status"] == "submitted", sell
        assert "does not allow short selling" in sell["reason"], sell
        assert fake.balance("BTC") == 0 and held(config) == 0

        # (another quantity: the same payload again would be answered as a duplicate alert)
        flat_sell = deliver(config, {"ticker": "BTCUSDT", "action": "sell", "quantity": 0.02})
        assert flat_sell["status"] == "rejected", flat_sell
        assert flat_sell["reason"] == "broker binance does not allow short selling"
        assert [o.params["side"] for o in fake.sent()] == ["BUY", "SELL", "SELL"]

        # -- a bracket with both legs: spot cannot rest two sells on one balance → refused
        sent_before = len(fake.sent())
        bracket = BUY | {"takeProfit": {"limitPrice": 52000}, "stopLoss": {"stopPrice": 48000}}
        refused = deliver(config, bracket)
        assert refused["status"] == "rejected", refused
        assert "a take-profit and a stop-loss cannot both protect it" in refused["reason"]
        assert len(fake.sent()) == sent_before  # nothing reached the exchange

        # -- an emulated bracket with its stop-loss: placed once the entry fills
        guarded = BUY | {"quantity": 0.011, "stopLoss": {"stopPrice": 48000}}
        assert deliver(config, guarded)["status"] == "submitted"
        orders = wait_for(
            lambda: (o := orders_of(config))["stop_loss"]["status"] == "accepted" and o,
            what="the stop-loss accepted",
        )
        assert orders["entry"]["status"] == "filled"
        assert [(o.client_order_id, o.type) for o in fake.open_orders()] == [
            (orders["stop_loss"]["client_order_id"], "STOP_LOSS")
        ]
        fake.set_price("BTCUSDT", 47900)  # the stop triggers; the poller reports its fill
        orders = wait_for(
            lambda: (o := orders_of(config))["stop_loss"]["status"] == "filled" and o,
            what="the stop-loss filled",
        )
        assert orders, "the stop-loss's fill was not reported"
        assert fake.balance("BTC") == 0 and held(config) == 0

        # -- a resting entry, then the strategy's cancel
        fake.set_price("BTCUSDT", 51000)
        assert deliver(config, BUY | {"orderType": "limit", "limitPrice": 50000})["status"] == (
            "submitted"
        )
        assert len(fake.open_orders()) == 1
        canceled = deliver(config, {"ticker": "BTCUSDT", "action": "cancel"})
        assert canceled["status"] == "submitted", canceled
        assert fake.open_orders() == []
        assert orders_of(config)["entry"]["status"] == "canceled"

        # -- a position and a resting take-profit, then flatten: cancel, then sell at market
        assert deliver(config, BUY | {"takeProfit": {"limitPrice": 60000}})["status"] == "submitted"
        assert wait_for(lambda: len(fake.open_orders()) == 1)
        assert fake.balance("BTC") == D("0.01")
        tradepipe(config, "flatten", "--yes", env=ENV)
        assert fake.open_orders() == [] and fake.balance("BTC") == 0
        assert (fake.sent()[-1].params["side"], fake.sent()[-1].params["type"]) == (
            "SELL",
            "MARKET",
        )
        assert tradepipe_json(config, "positions") == []


def test_the_exchanges_commission_is_journaled_and_the_report_is_net_of_it(tmp_path, fake):
    """0.1 % of each trade's cost, in USDT: bought 0.02 at 50,000 (fee 1), sold at 51,000
    (fee 1.02): realized (51,000 − 50,000) × 0.02 − 2.02 = 17.98."""
    fake.commission_rate = D("0.001")
    config = binance_config(tmp_path, fake)
    with Daemon(config, free_port(), env=ENV):
        assert deliver(config, BUY | {"quantity": 0.02})["status"] == "submitted"
        fake.set_price("BTCUSDT", 51000)
        assert deliver(config, {"ticker": "BTCUSDT", "action": "exit"})["status"] == "submitted"
        fills = tradepipe_json(config, "trades")
    assert sorted((f["side"], f["fee"], f["fee_currency"]) for f in fills) == [
        ("buy", 1, "USDT"),
        ("sell", 1.02, "USDT"),
    ]
    report = tradepipe_json(config, "report")
    (trip,) = report["round_trips"]
    assert (trip["gross"], trip["fees"], trip["net"]) == (20, 2.02, 17.98)
    assert report["fees"] == {"unreported_fills": 0, "not_netted": []}
