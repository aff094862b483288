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
