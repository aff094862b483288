"""SPEC §13's risk limits end to end, as a user meets them: `tradepipe serve` as a subprocess,
signals through `tradepipe send --wait`, marks moved with `tradepipe paper quote`, and what is
in force read back through `tradepipe risk` (rich and --json)."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.helpers import (
    Daemon,
    deliver,
    free_port,
    tradepipe,
    tradepipe_json,
    wait_for,
    write_config,
)


def buy(quantity, price=100, ticker="AAPL"):
    return {"ticker": ticker, "action": "buy", "quantity": quantity, "signalPrice": price}


def exit_(price, ticker="AAPL"):
    return {"ticker": ticker, "action": "exit", "signalPrice": price}


def risk_config(tmp_path, lines: str):
    return write_config(tmp_path, account="[accounts.paper.risk]\n" + lines)


def account_state(config) -> dict | None:
    report = tradepipe_json(config, "risk")
    return next((s for s in report["states"] if s["scope"] == "account"), None)


def test_a_daily_loss_trip_from_a_paper_quote_then_only_exits(tmp_path):
    config = risk_config(tmp_path, "max_daily_loss = 150\n")
    with Daemon(config, free_port()):
        assert deliver(config, buy(10))["status"] == "submitted"
        tradepipe(config, "paper", "quote", "paper", "AAPL", "84")  # 10 × -16 = -160
        state = wait_for(lambda: account_state(config), what="the daily-loss trip")
        assert (state["state"], state["limit"], state["source"]) == (
            "reduce_only",
            "max_daily_loss",
            "trip",
        )
        assert state["until_at"] is not None  # ends at the next day's start
        assert state["figures"]["loss"] == "160"
        entry = deliver(config, buy(1, 84, "MSFT"))
        # The trip's state is in force: the state gate (first in the pre-trade check) says so.
        assert (entry["status"], entry["reason"]) == (
            "rejected",
            'account "paper" is reduce_only (max_daily_loss 150: the day\'s loss is 160 (equity'
            " 99,840, 100,000 at the day's start)): an entry is rejected; exits, cancels and"
            " flatten go through",
        )
        out = deliver(config, exit_(84))
        assert out["status"] == "submitted", out
        report = tradepipe_json(config, "risk")
        (account,) = report["accounts"]
        assert account["use"]["day_pnl"] == "-160"
        assert account["limits"]["max_daily_loss"] == "150"
        assert report["daemon"] is True
        shown = tradepipe(config, "risk").stdout
        assert "reduce_only" in shown and "max_daily_loss" in shown
        assert "-160" in shown
    # Without the daemon, the same state and figures from the journal.
    report = tradepipe_json(config, "risk")
    assert report["daemon"] is False
    assert [s["limit"] for s in report["states"]] == ["max_daily_loss"]
    assert report["accounts"][0]["use"]["day_pnl"] == "-160"


def test_the_fat_finger_default_the_open_positions_and_the_exposure_limits(tmp_path):
    config = risk_config(tmp_path, "max_open_positions = 2\nmax_gross_exposure = 2000\n")
    with Daemon(config, free_port()):
        fat = deliver(config, buy(1001))  # 100,100: more than 100 % of the day's 100,000
        assert (fat["status"], fat["reason"]) == (
            "rejected",
            "max_order_value 100% = 100,000: this order is worth 100,100 (1001 × 100)",
        )
        assert deliver(config, buy(15))["status"] == "submitted"  # 1,500 of 2,000
        reduced = deliver(config, buy(10, ticker="MSFT"))
        assert reduced["status"] == "submitted"
        assert "max_gross_exposure 2,000: this entry would bring it to 2,500" in reduced["reason"]
        assert "reduced from 10 to 5" in reduced["reason"]
        third = deliver(config, buy(1, ticker="NVDA"))
        assert third["status"] == "rejected"
        assert third["reason"].startswith("max_open_positions 2: this entry into NVDA")
        positions = {p["ticker"]: p["quantity"] for p in tradepipe_json(config, "positions")}
        assert positions == {"AAPL": 15, "MSFT": 5}
        (account,) = tradepipe_json(config, "risk")["accounts"]
        assert (account["use"]["gross_exposure"], account["use"]["open_positions"]) == ("2000", 2)


def test_an_order_rate_trip(tmp_path):
    config = risk_config(tmp_path, "max_orders_per_minute = 2\n")
    with Daemon(config, free_port()):
        assert deliver(config, buy(1))["status"] == "submitted"
        assert deliver(config, buy(1, ticker="MSFT"))["status"] == "submitted"
        third = deliver(config, buy(1, ticker="NVDA"))
        assert (third["status"], third["reason"]) == (
            "rejected",
            'account "paper" is reduce_only (max_orders_per_minute 2: 2 orders were sent in the'
            " last minute): an entry is rejected; exits, cancels and flatten go through",
        )
        state = account_state(config)
        assert state is not None
        assert (state["state"], state["limit"], state["until_at"]) == (
            "reduce_only",
            "max_orders_per_minute",
            None,
        )
        audit = tradepipe_json(config, "audit")
        trips = [e for e in audit if e["kind"] == "trading_state"]
        assert len(trips) == 1 and trips[0]["detail"]["limit"] == "max_orders_per_minute"


def test_on_trip_flatten_closes_everything_then_halts(tmp_path):
    config = risk_config(tmp_path, 'max_daily_loss = "0.1%"\non_trip = "flatten"\n')
    with Daemon(config, free_port()):
        assert deliver(config, buy(10))["status"] == "submitted"
        assert deliver(config, buy(4, 50, "MSFT"))["status"] == "submitted"
        tradepipe(config, "paper", "quote", "paper", "AAPL", "80")  # -200 > 100
        wait_for(lambda: tradepipe_json(config, "positions") == [], what="the flatten")
        state = account_state(config)
        assert state is not None
        assert (state["state"], state["limit"]) == ("halted", "max_daily_loss")
        sold = [o for o in tradepipe_json(config, "orders") if o["side"] == "sell"]
        assert {(o["ticker"], Decimal(str(o["quantity"]))) for o in sold} == {
            ("AAPL", 10),
            ("MSFT", 4),
        }
        shown = json.dumps(tradepipe_json(config, "audit"))
        assert "max_daily_loss trip" in shown  # the flatten names why it ran
