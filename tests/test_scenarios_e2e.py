"""SPEC §5–§8 scenarios end to end, as a user runs them: `tradepipe serve` as a subprocess,
signals through `tradepipe send --wait`, state read back through `tradepipe positions/orders`.

Each scenario is a subscription's settings, the signals in order, and what must come of the
last one. The pure tables (test_plan.py, test_risk.py, test_breakeven.py) cover every rule; these
prove the same rules hold through the webhook, the engine and the paper broker.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import Daemon, free_port, tradepipe, tradepipe_json, write_config


def _closed_window() -> str:
    """A one-minute window six hours from now: whenever the test runs, it is closed."""
    start = datetime.now(UTC) + timedelta(hours=6)
    end = start + timedelta(minutes=1)
    return (
        f'trading_windows = [{{ days = "mon-sun", start = "{start:%H:%M}",'
        f' end = "{end:%H:%M}", tz = "UTC" }}]\n'
    )


def buy(quantity, price=100, **extra):
    return {"ticker": "AAPL", "action": "buy", "quantity": quantity, "signalPrice": price, **extra}


def sell(quantity, price=100, **extra):
    return {"ticker": "AAPL", "action": "sell", "quantity": quantity, "signalPrice": price, **extra}


# (id, subscription settings, signals, (status, reason) of the last delivery, position after)
SCENARIOS = [
    (
        "reversal",
        "",
        [buy(5), sell(2, 101)],
        ("submitted", "exit long 5, wait for the fill, then sell 2"),
        -2,
    ),
    (
        "reversal-subtracting-the-exit-quantity",
        "subtract_exit_quantity = true\n",
        [buy(5), sell(8, 101)],  # TradingView's {{strategy.order.contracts}}: 5 to exit + 3
        ("submitted", "exit long 5, wait for the fill, then sell 3"),
        -3,
    ),
    (
        "partial-exit-by-quantity",
        "",
        [buy(10), {"ticker": "AAPL", "action": "exit", "quantity": 4, "signalPrice": 102}],
        ("submitted", "partial exit of long 4 of 10"),
        6,
    ),
    (
        "partial-exit-by-percent-of-position",
        "",
        [
            buy(10),
            {
                "ticker": "AAPL",
                "action": "exit",
                "quantity": 25,
                "quantityType": "percent_of_position",
                "signalPrice": 102,
            },
        ],
        ("submitted", "partial exit of long 2 of 10"),  # 2.5 rounds down to whole shares
        8,
    ),
    (
        "long-only-subscription-exits-on-a-sell",
        'sides = "long"\n',
        [buy(5), sell(5, 99)],
        ("submitted", "exit long 5 of 5 (sides = long: exit only)"),
        0,
    ),
    (
        "long-only-subscription-skips-a-sell-when-flat",
        'sides = "long"\n',
        [sell(5)],
        ("skipped", "sides = long: a sell does not open a short position"),
        0,
    ),
    (
        "trading-window-skips-an-entry",
        _closed_window(),
        [buy(5)],
        ("skipped", "outside the trading windows"),
        0,
    ),
]


def run_scenario(tmp_path, subscription, signals):
    config = write_config(tmp_path, subscription=subscription)
    with Daemon(config, free_port()):
        for payload in signals:
            answer = json.loads(
                tradepipe(config, "send", json.dumps(payload), "--json", "--wait").stdout
            )
        positions = tradepipe_json(config, "positions")
    (delivery,) = answer["signal"]["deliveries"]
    held = sum(p["quantity"] for p in positions)
    return delivery, held


@pytest.mark.parametrize(
    ("subscription", "signals", "outcome", "position"),
    [case[1:] for case in SCENARIOS],
    ids=[case[0] for case in SCENARIOS],
)
def test_scenario(tmp_path, subscription, signals, outcome, position):
    delivery, held = run_scenario(tmp_path, subscription, signals)
    status, reason = outcome
    assert delivery["status"] == status
    assert reason in delivery["reason"]
    assert held == position


def test_emulated_bracket_through_the_daemon(tmp_path):
    """A paper account without native brackets: tradepipe places the stop and take-profit
    after the entry fills, and cancels the stop when `paper quote` fills the take-profit."""
    config = write_config(tmp_path, account="native_brackets = false\n")
    with Daemon(config, free_port()):
        entry = buy(4, 200, orderType="limit", limitPrice=199)
        entry |= {"takeProfit": {"amount": 10}, "stopLoss": {"percent": 5}}
        tradepipe(config, "send", json.dumps(entry), "--wait")
        orders = {o["role"]: o for o in tradepipe_json(config, "orders")}
        assert (orders["take_profit"]["status"], orders["stop_loss"]["status"]) == (
            "held",
            "held",
        )
        tradepipe(config, "paper", "quote", "paper", "AAPL", "198")  # the entry fills at 199
        orders = wait_for_orders(config, lambda o: o["stop_loss"]["status"] == "accepted")
        assert (orders["take_profit"]["limit_price"], orders["stop_loss"]["stop_price"]) == (
            209,
            189.05,
        )
        tradepipe(config, "paper", "quote", "paper", "AAPL", "210")
        orders = wait_for_orders(config, lambda o: o["stop_loss"]["status"] == "canceled")
        assert orders["take_profit"]["status"] == "filled"
        assert tradepipe_json(config, "positions") == []


def wait_for_orders(config, done, timeout=5.0):
    """The daemon settles emulated brackets right after it answers: poll the listing."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        orders = {o["role"]: o for o in tradepipe_json(config, "orders")}
        if done(orders) or time.monotonic() > deadline:
            return orders
        time.sleep(0.05)


# SPEC §12 through the webhook, the engine and the paper broker: the signal is accepted (200,
# journaled, visible in `tradepipe signals`), the delivery is refused with the reason, and no
# order reaches the broker.
REFUSED = [
    (
        # paper selects option contracts (SPEC §15), but never guesses the right
        "options-are-not-traded-as-the-stock",
        {
            "ticker": "SPY",
            "action": "buy",
            "strikesAway": 1,
            "expiration": "+7 days",
            "quantity": 2,
            "signalPrice": 600,
        },
        "option fields without optionType (expiration +7 days, strikesAway 1): say optionType"
        " call, put or both; nothing was sent",
    ),
    (
        "short-take-profit-150-percent",
        sell(5, takeProfit={"percent": 150}),
        "take-profit -50 is not a price (takeProfit.percent 150 from the entry 100 goes to or"
        " past 0)",
    ),
    (
        # was "failed" with "broker paper: ...": a price that is no price is a refusal, not our
        # failure, and it never becomes the mark
        "signal-price-below-one-tick",
        {"ticker": "AAPL", "action": "buy", "quantity": 1, "signalPrice": 1e-30},
        "signalPrice 1E-30 is not a usable mark: paper broker: mark 1E-30 for AAPL is below one"
        " tick (0.0001): no order can trade at it",
    ),
]


@pytest.mark.parametrize(
    ("payload", "reason"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_refused_delivery_sends_no_order(tmp_path, payload, reason):
    config = write_config(tmp_path)
    with Daemon(config, free_port()):
        answer = json.loads(
            tradepipe(config, "send", json.dumps(payload), "--json", "--wait").stdout
        )
        orders = tradepipe_json(config, "orders")
        positions = tradepipe_json(config, "positions")
        listed = tradepipe(config, "signals").stdout
    assert answer["ok"] is True and answer["duplicate"] is False
    (delivery,) = answer["signal"]["deliveries"]
    assert (delivery["status"], delivery["reason"]) == ("rejected", reason)
    assert orders == [] and positions == []
    assert "rejected" in listed


def test_a_newline_a_signal_carries_into_the_daemon_log_cannot_forge_a_line(tmp_path):
    # The delivery's reason quotes the alert's free text (here `expiration`) and is logged at
    # INFO: `serve` must install the escaping formatter, not only have one
    config = write_config(tmp_path)
    payload = {
        "ticker": "SPY",
        "action": "buy",
        "optionType": "put",
        "expiration": "+7 days\nFORGED ERROR line",
        "quantity": 1,
        "signalPrice": 600,
    }
    daemon = Daemon(config, free_port()).start()
    try:
        tradepipe(config, "send", json.dumps(payload), "--wait")
    finally:
        output = daemon.stop()
    # (paper selects contracts: the selector's reason quotes the expiration it cannot read)
    assert '"+7 days\\nFORGED ERROR line" is neither a date' in output
    assert not any(line.startswith("FORGED") for line in output.splitlines())
