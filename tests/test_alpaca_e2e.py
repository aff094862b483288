"""SPEC scenarios at Alpaca end to end, as a user runs them: the fake Alpaca in this process,
`tradepipe serve` as a subprocess with an `alpaca` account pointing at it (credentials from the
environment), signals through `tradepipe send --wait`, state read back from the fake and from
`tradepipe orders/positions --json`."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from tests.fakes.alpaca import FakeAlpaca
from tests.helpers import Daemon, free_port, tradepipe, tradepipe_json

D = Decimal


@pytest.fixture
def fake():
    with FakeAlpaca() as running:
        running.set_price("AAPL", 100)
        yield running


def send(config, fake, payload: dict) -> dict:
    answer = tradepipe(config, "send", json.dumps(payload), "--json", "--wait", env=fake.env)
    (delivery,) = json.loads(answer.stdout)["signal"]["deliveries"]
    return delivery


def signal(action: str, quantity, **extra) -> dict:
    return {"ticker": "AAPL", "action": action, "quantity": quantity, "signalPrice": 100, **extra}


def held(config) -> Decimal:
    return sum((D(str(p["quantity"])) for p in tradepipe_json(config, "positions")), D(0))


def wait_for(read, done, timeout: float = 10.0):
    """The daemon journals what the stream reports after the answer: poll."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def by_role(config) -> dict[str, dict]:
    return {o["role"]: o for o in reversed(tradepipe_json(config, "orders"))}


def test_entry_reversal_and_partial_exit(tmp_path, fake):
    config = fake.config(tmp_path)
    with Daemon(config, free_port(), env=fake.env):
        entry = send(config, fake, signal("buy", 5))
        assert entry["status"] == "submitted"
        assert fake.position("AAPL") == 5
        reversal = send(config, fake, signal("sell", 4, signalPrice=101))
        assert "exit long 5, wait for the fill, then sell 4" in reversal["reason"]
        assert fake.position("AAPL") == -4
        assert held(config) == -4
        partial = send(config, fake, signal("exit", 1, signalPrice=102))
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
        assert send(config, fake, entry)["status"] == "submitted"
        (parent,) = [o for o in fake.orders.values() if o.legs]
        assert parent.order_class == "bracket"  # one Alpaca bracket, not emulated legs
        fake.set_price("AAPL", 98)  # the entry fills at 99; Alpaca makes the legs live
        orders = wait_for(lambda: by_role(config), lambda o: o["entry"]["status"] == "filled")
        take_profit = D(str(orders["take_profit"]["limit_price"]))
        assert orders["stop_loss"]["status"] == "accepted"
        fake.set_price("AAPL", take_profit + 1)
        orders = wait_for(lambda: by_role(config), lambda o: o["stop_loss"]["status"] == "canceled")
        assert (orders["take_profit"]["status"], orders["stop_loss"]["status"]) == (
            "filled",
            "canceled",
        )
        assert fake.position("AAPL") == 0
        assert held(config) == 0


def test_cancel_then_flatten(tmp_path, fake):
    config = fake.config(tmp_path)
    with Daemon(config, free_port(), env=fake.env):
        send(config, fake, signal("buy", 2, orderType="limit", limitPrice=90))
        (limit,) = fake.orders.values()
        assert limit.status == "new"
        canceled = send(config, fake, {"ticker": "AAPL", "action": "cancel"})
        assert canceled["status"] == "submitted"
        assert limit.status == "canceled"
        assert wait_for(lambda: by_role(config), lambda o: o["entry"]["status"] == "canceled")
        bracket = signal("buy", 3, takeProfit={"amount": 10}, stopLoss={"amount": 5})
        send(config, fake, bracket)  # filled at once: its legs rest at Alpaca
        assert fake.position("AAPL") == 3
        flattened = json.loads(tradepipe(config, "flatten", "--yes", "--json", env=fake.env).stdout)
        (item,) = flattened["flattened"]
        assert item["closed"]["quantity"] == "3"
        assert len(item["canceled"]) == 2  # the take-profit and the stop-loss
        assert fake.position("AAPL") == 0
        assert not [o for o in fake.orders.values() if o.status in ("new", "held")]
        assert held(config) == 0
