"""SPEC scenarios at Alpaca end to end, as a user runs them: the fake Alpaca in this process,
`tradepipe serve` as a subprocess with an `alpaca` account pointing at it (credentials from the
environment), signals through `tradepipe send --wait`, state read back from the fake and from
`tradepipe orders/positions --json`."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.fakes.alpaca import FakeAlpaca
from tests.helpers import Daemon, deliver, free_port, held, tradepipe, tradepipe_json, wait_for

D = Decimal


@pytest.fixture
def fake():
    with FakeAlpaca() as running:
        running.set_price("AAPL", 100)
        yield running


def signal(action: str, quantity, **extra) -> dict:
    return {"ticker": "AAPL", "action": action, "quantity": quantity, "signalPrice": 100, **extra}


def by_role(config) -> dict[str, dict]:
    return {o["role"]: o for o in reversed(tradepipe_json(config, "orders"))}


def test_entry_reversal_and_partial_exit(tmp_path, fake):
    config = fake.config(tmp_path)
    with Daemon(config, free_port(), env=fake.env):
        entry = deliver(config, env=fake.env, payload=signal("buy", 5))
        assert entry["status"] == "submitted"
        assert fake.position("AAPL") == 5
        reversal = deliver(config, env=fake.env, payload=signal("sell", 4, signalPrice=101))
        assert "exit long 5, wait for the fill, then sell 4" in reversal["reason"]
        assert fake.position("AAPL") == -4
        assert held(config) == -4
        partial = deliver(config, env=fake.env, payload=signal("exit", 1, signalPrice=102))
        assert "partial exit of short 1 of 4" in partial["reason"]
        assert fake.position("AAPL") == -3
        assert held(config) == -3
        orders = tradepipe_json(config, "orders")
        ours = {o["client_order_id"] for o in orders}
        assert ours == {o.client_order_id for o in fake.orders.values()}  # our ids, no others
        assert [o["status"] for o in orders] == ["filled"] * 4


def test_bracket_take_profit_fills_and_the_stop_is_canceled(tmp_path, fake):
    config = fake.config(tmp_path)
    with Daemon(config, free_port(), env=fake.env):
        entry = signal("buy", 4, orderType="limit", limitPrice=99)
        entry |= {"takeProfit": {"amount": 10}, "stopLoss": {"percent": 5}}
        assert deliver(config, env=fake.env, payload=entry)["status"] == "submitted"
        (parent,) = [o for o in fake.orders.values() if o.legs]
        assert parent.order_class == "bracket"  # one Alpaca bracket, not emulated legs
        fake.set_price("AAPL", 98)  # the entry fills at 99; Alpaca makes the legs live
        orders = wait_for(
            lambda: (o := by_role(config))["entry"]["status"] == "filled" and o,
            what="the entry filled",
        )
        take_profit = D(str(orders["take_profit"]["limit_price"]))
        assert orders["stop_loss"]["status"] == "accepted"
        fake.set_price("AAPL", take_profit + 1)
        orders = wait_for(
            lambda: (o := by_role(config))["stop_loss"]["status"] == "canceled" and o,
            what="the stop-loss canceled",
        )
        assert (orders["take_profit"]["status"], orders["stop_loss"]["status"]) == (
            "filled",
            "canceled",
        )
        assert fake.position("AAPL") == 0
        assert held(config) == 0


def test_cancel_then_flatten(tmp_path, fake):
    config = fake.config(tmp_path)
    with Daemon(config, free_port(), env=fake.env):
        deliver(config, env=fake.env, payload=signal("buy", 2, orderType="limit", limitPrice=90))
        (limit,) = fake.orders.values()
        assert limit.status == "new"
        canceled = deliver(config, env=fake.env, payload={"ticker": "AAPL", "action": "cancel"})
        assert canceled["status"] == "submitted"
        assert limit.status == "canceled"
        assert wait_for(lambda: (o := by_role(config))["entry"]["status"] == "canceled" and o)
        bracket = signal("buy", 3, takeProfit={"amount": 10}, stopLoss={"amount": 5})
        deliver(config, env=fake.env, payload=bracket)  # filled at once: its legs rest at Alpaca
        assert fake.position("AAPL") == 3
        flattened = json.loads(tradepipe(config, "flatten", "--yes", "--json", env=fake.env).stdout)
        (item,) = flattened["flattened"]
        assert item["closed"]["quantity"] == "3"
        assert len(item["canceled"]) == 2  # the take-profit and the stop-loss
        assert fake.position("AAPL") == 0
        assert not [o for o in fake.orders.values() if o.status in ("new", "held")]
        assert held(config) == 0


def test_an_order_alpaca_refuses_after_taking_it_is_told_as_a_failure(tmp_path, fake):
    from tests.notify_receiver import Receiver, notify_table

    with Receiver() as receiver:
        config = fake.config(tmp_path)
        config.write_text(config.read_text() + notify_table(receiver, events=["failure"]))
        with Daemon(config, free_port(), env=fake.env):
            entry = signal("buy", 3, orderType="limit", limitPrice=90)
            assert deliver(config, env=fake.env, payload=entry)["status"] == "submitted"
            (order,) = tradepipe_json(config, "orders")
            assert order["status"] == "accepted"  # resting at 90
            assert receiver.messages == []  # a delivery submitted: nothing to tell
            fake.refuse_working(order["client_order_id"])
            (message,) = receiver.wait(1)
            wait_for(
                lambda: tradepipe_json(config, "orders")[0]["status"] == "rejected",
                what="the refusal journaled",
            )
    assert message["title"] == f"tradepipe: failure: order {order['client_order_id']}"
    assert message["message"].startswith(
        f"alpaca: the broker refused entry order {order['client_order_id']} (buy 3 AAPL) after"
        " taking it: "
    )
