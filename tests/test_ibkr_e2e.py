"""Interactive Brokers end to end, as a user runs it: the fake TWS in this process, `tradepipe
serve` as a subprocess connecting to it, signals through `tradepipe send --wait`, state read
back through `tradepipe orders/positions --json` and the fake's own books."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.fakes.tws import FakeTws
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

IB_ACCOUNT = """
[accounts.ib]
broker = "ibkr"
host = "127.0.0.1"
port = {port}
client_id = 5
timeout = 3

[subscriptions.trend-ib]
strategy = "trend"
account = "ib"
"""


@pytest.fixture
def fake():
    with FakeTws() as tws:
        tws.set_price("AAPL", 100)
        yield tws


@pytest.fixture
def config(fake, tmp_path):
    # The paper subscription is off: every signal goes to IB only.
    return write_config(
        tmp_path, IB_ACCOUNT.format(port=fake.port), subscription="enabled = false\n"
    )


def fake_position(fake: FakeTws, symbol: str = "AAPL") -> Decimal:
    return sum((q for c, q, _ in list(fake.positions.values()) if c.symbol == symbol), Decimal(0))


def buy(quantity, **extra):
    return {"ticker": "AAPL", "action": "buy", "quantity": quantity, "signalPrice": 100, **extra}


def test_entry_reaches_ib_with_our_order_ref(fake, config):
    with Daemon(config, free_port()):
        delivery = deliver(config, buy(5))
        assert delivery["status"] == "submitted"
        assert wait_for(lambda: held(config) == 5)
        (order,) = tradepipe_json(config, "orders")
    (placed,) = fake.logged("placeOrder")
    assert placed["orderRef"] == order["client_order_id"]
    assert (order["account"], order["status"]) == ("ib", "filled")
    assert fake_position(fake) == 5


def test_reversal_exits_then_enters(fake, config):
    with Daemon(config, free_port()):
        deliver(config, buy(5))
        assert wait_for(lambda: fake_position(fake) == 5)
        delivery = deliver(config, {"ticker": "AAPL", "action": "sell", "quantity": 2})
        assert "exit long 5, wait for the fill, then sell 2" in delivery["reason"]
        assert wait_for(lambda: held(config) == -2)
    sent = [(p["action"], Decimal(p["totalQuantity"])) for p in fake.logged("placeOrder")]
    assert sent == [("BUY", 5), ("SELL", 5), ("SELL", 2)]
    assert fake_position(fake) == -2


def test_partial_exit(fake, config):
    with Daemon(config, free_port()):
        deliver(config, buy(10))
        assert wait_for(lambda: fake_position(fake) == 10)
        delivery = deliver(config, {"ticker": "AAPL", "action": "exit", "quantity": 4})
        assert "partial exit of long 4 of 10" in delivery["reason"]
        assert wait_for(lambda: held(config) == 6)
    assert fake_position(fake) == 6


def test_bracket_take_profit_fills_and_ib_cancels_the_stop(fake, config):
    with Daemon(config, free_port()):
        entry = buy(4, takeProfit={"amount": 10}, stopLoss={"amount": 5})
        assert deliver(config, entry)["status"] == "submitted"
        sent = fake.logged("placeOrder")
        assert [p["transmit"] for p in sent] == [False, False, True]
        assert wait_for(lambda: [o.status for o in fake.orders.values()][1:] == ["Submitted"] * 2)
        fake.set_price("AAPL", 111)

        def settled() -> bool:
            roles = {o["role"]: o["status"] for o in tradepipe_json(config, "orders")}
            return roles.get("stop_loss") == "canceled" and roles.get("take_profit") == "filled"

        assert wait_for(settled)
        assert held(config) == 0
    assert fake_position(fake) == 0


def test_cancel_signal_cancels_the_resting_order_at_ib(fake, config):
    with Daemon(config, free_port()):
        deliver(config, buy(3, orderType="limit", limitPrice=90))
        (order,) = tradepipe_json(config, "orders")
        assert order["status"] == "accepted"
        deliver(config, {"ticker": "AAPL", "action": "cancel"})
        assert wait_for(lambda: tradepipe_json(config, "orders")[0]["status"] == "canceled")
    assert [o.status for o in fake.orders.values()] == ["Cancelled"]
    assert len(fake.logged("cancelOrder")) == 1


def test_flatten_cancels_and_closes_at_ib(fake, config):
    with Daemon(config, free_port()):
        deliver(config, buy(5))
        assert wait_for(lambda: fake_position(fake) == 5)
        deliver(config, buy(2, orderType="limit", limitPrice=90))  # adds 2 more (resting)
        done = json.loads(tradepipe(config, "flatten", "--yes", "--json").stdout)
        (item,) = done["flattened"]
        assert (item["account"], item["ticker"]) == ("ib", "AAPL")
        assert item["closed"]["status"] == "filled"
        assert wait_for(lambda: held(config) == 0)
    assert fake_position(fake) == 0
    assert not [o for o in fake.orders.values() if o.is_working]


def test_the_commission_ib_reports_after_the_execution_is_the_fills_fee(fake, config):
    """IB sends an execution's commission report after the execution (and its status): the
    fill is journaled first, its fee when the report comes (an audit event says so)."""
    fake.commission_delay = 0.5
    with Daemon(config, free_port()):
        assert deliver(config, buy(5))["status"] == "submitted"
        assert_fee_journaled(config, "the commission journaled as the fill's fee")


def assert_fee_journaled(config, what: str) -> None:
    """The one fill gets IB's commission (1 USD) as its fee, with its `fill_fee` audit event."""
    wait_for(lambda: [f["fee"] for f in tradepipe_json(config, "trades")] == [1], what=what)
    (fill,) = tradepipe_json(config, "trades")
    audit = tradepipe_json(config, "audit")
    assert fill["fee_currency"] == "USD"
    (event,) = [e for e in audit if e["kind"] == "fill_fee"]
    assert event["subject"].startswith("ib:") and event["detail"]["fee"] in (1, "1")


def test_a_commission_ib_reports_after_a_restart_is_the_fills_fee(fake, config):
    """The daemon stops after the execution and before its commission report: the fill is in
    the journal without a fee. The next daemon asks IB for the day's executions, which come with
    their commission reports: the fee is journaled then (the journal, not memory, says which
    fills still wait for theirs)."""
    fake.commission_delay = 2.0
    with Daemon(config, free_port()):
        assert deliver(config, buy(5))["status"] == "submitted"
        (fill,) = wait_for(lambda: tradepipe_json(config, "trades"), what="the fill journaled")
    assert fill["fee"] is None  # stopped before the report came
    (execution,) = fake.executions
    wait_for(lambda: execution.commission_known, what="the commission known at IB")
    with Daemon(config, free_port()):
        assert_fee_journaled(config, "the commission journaled as the fill's fee after the restart")
