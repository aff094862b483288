"""SPEC §13's schedules end to end, as a user runs them: `tradepipe serve` as a subprocess
(killed and started again), signals through `tradepipe send`, state read back through the CLI
and the journal file. Time passes for real: short delays, and a daemon kept stopped past one.
"""

from __future__ import annotations

import json
import re
import signal
import time
from datetime import UTC, datetime, timedelta

from tests.helpers import Daemon, free_port, on_disk, tradepipe, tradepipe_json, wait_for
from tests.helpers import write_config as _write_config


def write_config(tmp_path, subscription: str = ""):
    return _write_config(tmp_path, subscription=subscription)


def send(config, payload: dict) -> tuple[int, dict]:
    """`tradepipe send --wait`: the signal's id and its one delivery."""
    answer = json.loads(tradepipe(config, "send", json.dumps(payload), "--json", "--wait").stdout)
    (delivery,) = answer["signal"]["deliveries"]
    return answer["signal"]["id"], delivery


def shown(config, signal_id: int) -> dict:
    """`tradepipe signals show ID --json`: the signal's one delivery."""
    (delivery,) = tradepipe_json(config, "signals", "show", str(signal_id))["deliveries"]
    return delivery


def limit(ticker: str, **extra) -> dict:
    return {
        "ticker": ticker,
        "action": "buy",
        "quantity": 5,
        "signalPrice": 100,
        "orderType": "limit",
        "limitPrice": 90,
        **extra,
    }


def test_cancel_after_and_cancel_after_from_the_signal_cancel_unfilled_limit_orders(tmp_path):
    config = write_config(tmp_path, subscription="cancel_after = 6\n")
    journal = tmp_path / "journal.db"
    with Daemon(config, free_port()):
        setting, _ = send(config, limit("AAPL"))
        payload, _ = send(config, limit("MSFT", cancelAfter=4))
        # Each CLI call takes a moment: the journal file is read directly while they rest.
        assert on_disk(journal, "SELECT ticker, status FROM orders ORDER BY id") == [
            ("AAPL", "accepted"),
            ("MSFT", "accepted"),
        ]

        def canceled():
            found = tradepipe_json(config, "orders")
            return all(o["status"] == "canceled" for o in found) and found

        wait_for(canceled, timeout=15, what="both limit orders canceled")
        for signal_id, reason in [
            (setting, "canceled: unfilled after 6 s (cancel_after)"),
            (payload, "canceled: unfilled after 4 s (cancelAfter)"),
        ]:
            (item,) = wait_for(lambda i=signal_id: done(config, i), what="the cancel journaled")
            assert (item["kind"], item["reason"]) == ("cancel_after", reason)
        text = tradepipe(config, "signals", "show", str(payload)).stdout
        assert "scheduled cancel_after order" in text and "unfilled after 4 s (cancelAfter)" in text
        assert tradepipe_json(config, "positions") == []
    assert on_disk(journal, "SELECT status FROM paper_orders") == [("canceled",), ("canceled",)]


def done(config, signal_id: int) -> list[dict]:
    items = shown(config, signal_id)["schedules"]
    return items if items and all(i["status"] == "done" for i in items) else []


def test_a_delay_across_a_kill_9_and_a_restart_sends_exactly_one_order(tmp_path):
    config = write_config(tmp_path)
    journal = tmp_path / "journal.db"
    port = free_port()
    daemon = Daemon(config, port).start()
    try:
        # Long enough that the checks below (four CLI runs) end well before it, on a busy
        # machine too: the kill must come while the delivery waits.
        signal_id, delivery = send(
            config, {"ticker": "AAPL", "action": "buy", "quantity": 5, "delay": 10, "price": 100}
        )
        assert delivery["status"] == "delayed"
        assert delivery["reason"].startswith("waits for its delay of 10 s: due at ")
        listed = tradepipe(config, "signals").stdout
        assert "delayed" in tradepipe(config, "signals", "show", str(signal_id)).stdout
        assert "processed" in listed  # the signal is answered; its delivery waits
        assert "delay 10 ← signal" in shown(config, signal_id)["provenance"]
    finally:
        daemon.stop(signal.SIGKILL)  # while it waits
    assert on_disk(journal, "SELECT count(*) FROM paper_orders") == [(0,)]
    assert on_disk(journal, "SELECT status FROM schedules") == [("pending",)]
    (due,) = on_disk(journal, "SELECT due_at FROM schedules")[0]

    with Daemon(config, port):
        wait_for(
            lambda: shown(config, signal_id)["status"] == "submitted",
            timeout=25,
            what="the delayed delivery carried out after the restart",
        )
        (order,) = tradepipe_json(config, "orders")
        assert (order["status"], order["quantity"]) == ("filled", 5)
        # Not before its time.
        assert datetime.fromisoformat(order["created_at"]) >= datetime.fromisoformat(due)
    assert on_disk(journal, "SELECT count(*) FROM paper_orders") == [(1,)]
    assert on_disk(journal, "SELECT count(*) FROM paper_fills") == [(1,)]
    assert on_disk(journal, "SELECT status FROM schedules") == [("done",)]


def test_a_delay_sent_without_a_daemon_waits_for_the_next_serve(tmp_path):
    config = write_config(tmp_path)
    journal = tmp_path / "journal.db"
    signal_id, delivery = send(
        config, {"ticker": "AAPL", "action": "buy", "quantity": 2, "delay": 2, "price": 100}
    )
    assert delivery["status"] == "delayed"  # journaled by the one-shot run, not carried out
    assert on_disk(journal, "SELECT status FROM schedules") == [("pending",)]
    with Daemon(config, free_port()):
        wait_for(
            lambda: shown(config, signal_id)["status"] == "submitted",
            timeout=15,
            what="the delivery carried out by serve",
        )
    assert on_disk(journal, "SELECT count(*) FROM paper_orders") == [(1,)]


def test_a_delay_missed_by_more_than_60_s_while_stopped_is_rejected_never_sent(tmp_path):
    config = write_config(tmp_path)
    journal = tmp_path / "journal.db"
    port = free_port()
    with Daemon(config, port):
        signal_id, delivery = send(
            config, {"ticker": "AAPL", "action": "buy", "quantity": 5, "delay": 1, "price": 100}
        )
        assert delivery["status"] == "delayed"
    # Stopped (SIGTERM) before its time, and kept stopped until it is more than 60 s late.
    assert on_disk(journal, "SELECT status FROM schedules") == [("pending",)]
    (due,) = on_disk(journal, "SELECT due_at FROM schedules")[0]
    wait = datetime.fromisoformat(due) + timedelta(seconds=62) - datetime.now(UTC)
    time.sleep(max(wait.total_seconds(), 0))

    with Daemon(config, port):
        found = wait_for(
            lambda: (d := shown(config, signal_id))["status"] == "rejected" and d,
            timeout=15,
            what="the missed delivery rejected",
        )
        assert re.fullmatch(
            r"missed its time by 6\d s \(more than 60 s late\); nothing sent", found["reason"]
        )
        assert tradepipe_json(config, "orders") == []
    assert on_disk(journal, "SELECT count(*) FROM paper_orders") == [(0,)]
    (status, reason) = on_disk(journal, "SELECT status, reason FROM schedules")[0]
    assert status == "missed" and reason.startswith("missed its time by 6")


def test_flatten_at_closes_the_subscriptions_position(tmp_path):
    now = datetime.now(UTC)
    firing = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    if firing - now < timedelta(seconds=8):  # time to start and buy first
        firing += timedelta(minutes=1)
    flatten_at = f'flatten_at = {{ time = "{firing:%H:%M}", days = "mon-sun", tz = "UTC" }}\n'
    config = write_config(tmp_path, subscription=flatten_at)
    journal = tmp_path / "journal.db"
    with Daemon(config, free_port()):
        send(config, {"ticker": "AAPL", "action": "buy", "quantity": 3, "signalPrice": 20})
        assert tradepipe_json(config, "positions")[0]["quantity"] == 3
        assert on_disk(journal, "SELECT status, due_at FROM schedules") == [
            ("pending", firing.isoformat())
        ]
        left = (firing - datetime.now(UTC)).total_seconds()
        wait_for(
            lambda: tradepipe_json(config, "positions") == [],
            timeout=left + 15,
            what="the position closed by flatten_at",
        )
        closed = datetime.now(UTC)
        assert closed >= firing
        rows = on_disk(journal, "SELECT status, reason, due_at FROM schedules ORDER BY id")
        assert rows[0] == ("done", "flattened paper: AAPL: sell 3 (filled)", firing.isoformat())
        assert rows[1] == ("pending", None, (firing + timedelta(days=1)).isoformat())
        (sell,) = [o for o in tradepipe_json(config, "orders") if o["side"] == "sell"]
        assert (sell["role"], sell["status"], sell["quantity"]) == ("exit", "filled", 3)
