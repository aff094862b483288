"""`tradepipe replay ID [--execute]`: today's plan for an old signal, and sending it again."""

from __future__ import annotations

import json

from tests.helpers import Daemon, free_port, tradepipe, tradepipe_json, write_config


def test_replay_dry_run_plans_against_now_and_execute_sends_with_fresh_ids(tmp_path):
    config = write_config(tmp_path)
    buy = {"ticker": "AAPL", "action": "buy", "quantity": 2, "signalPrice": 50, "id": "a1"}
    first = json.loads(tradepipe(config, "send", json.dumps(buy), "--json").stdout)
    signal_id = first["signal_id"]
    # Already long 2: the same buy today is skipped (allow_add = false), and says so.
    dry = json.loads(tradepipe(config, "replay", str(signal_id), "--json").stdout)
    assert dry["plans"] == [
        {
            "subscription": "trend-paper",
            "account": "paper",
            "kind": "skip",
            "reason": "already long 2 (allow_add = false)",
        }
    ]
    tradepipe(config, "send", json.dumps({"ticker": "AAPL", "action": "exit", "signalPrice": 50}))
    text = tradepipe(config, "replay", str(signal_id)).stdout
    assert "trend-paper: plan enter long 2" in text and "dry run: nothing sent" in text
    assert tradepipe_json(config, "positions") == []  # a dry run sends nothing
    with Daemon(config, free_port()):
        done = json.loads(tradepipe(config, "replay", str(signal_id), "--execute", "--json").stdout)
    assert done["replay_of"] == signal_id and done["signal_id"] != signal_id
    (delivery,) = done["signal"]["deliveries"]
    assert delivery["status"] == "submitted"  # not a duplicate, despite the same "id"
    orders = tradepipe_json(config, "orders")
    entries = [o["client_order_id"] for o in orders if o["role"] == "entry"]
    assert len(entries) == 2 and len(set(entries)) == 2  # fresh ids
    assert tradepipe_json(config, "positions")[0]["quantity"] == 2
    missing = tradepipe(config, "replay", "999", check=False)
    assert missing.returncode == 2 and "no accepted signal 999" in missing.stderr


def test_replay_dry_run_of_a_bracket_order_through_the_daemon_and_on_its_own(tmp_path):
    """A dry run of every signal that would place an order failed ("Object of type Decimal is
    not JSON serializable": a 500 through the daemon, a traceback on its own). It plans against
    the mark of now (120), not the signal's price (100), and moves no mark."""
    config = write_config(tmp_path)
    bracket = {
        "ticker": "AAPL",
        "action": "buy",
        "quantity": 2,
        "signalPrice": 100,
        "takeProfit": {"percent": 10},
        "stopLoss": {"type": "stop", "amount": 5},
    }

    def dry_runs(signal_id: int) -> None:
        answer = json.loads(tradepipe(config, "replay", str(signal_id), "--json").stdout)
        (plan,) = answer["plans"]
        assert (plan["subscription"], plan["kind"]) == ("trend-paper", "plan")
        legs = {o["role"]: o for o in plan["orders"]}
        assert (legs["entry"]["side"], legs["entry"]["quantity"]) == ("buy", "2")
        assert legs["take_profit"]["limit_price"] == "132"  # 120 + 10 %
        assert legs["stop_loss"]["stop_price"] == "115"  # 120 − 5
        text = tradepipe(config, "replay", str(signal_id)).stdout
        assert "dry run: nothing sent" in text
        assert f"trend-paper: plan {plan['summary']}" in text
        assert tradepipe_json(config, "positions") == []  # nothing sent
        assert len(tradepipe_json(config, "orders")) == 4  # the bracket's 3, the exit: none new

    with Daemon(config, free_port()):
        first = json.loads(tradepipe(config, "send", json.dumps(bracket), "--json").stdout)
        signal_id = first["signal_id"]
        tradepipe(config, "send", json.dumps({"ticker": "AAPL", "action": "exit"}), "--wait")
        tradepipe(config, "paper", "quote", "paper", "AAPL", "120")
        dry_runs(signal_id)
    dry_runs(signal_id)  # no daemon: the same, on its own
    moved = tradepipe_json(config, "paper", "quote", "paper", "AAPL", "120")
    assert moved["filled"] == []  # the mark was still 120, nothing rested to fill
