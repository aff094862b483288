"""Reconciliation (SPEC §11): the state matrix, pure, then against the real paper broker."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.request
from decimal import Decimal

import pytest

from tests.helpers import Daemon, free_port, tradepipe, write_config
from tests.test_engine import Harness, run
from tradepipe.brokers.paper.broker import Fault
from tradepipe.core.model import OrderRequest, OrderState, OrderStatus, OrderType, Side
from tradepipe.core.reconcile import (
    Difference,
    foreign_orders,
    orders_to_look_up,
    position_drift,
    still_open,
)

D = Decimal


def state(cid: str, status=OrderStatus.ACCEPTED) -> OrderState:
    return OrderState(cid, status, ticker="AAPL")


@pytest.mark.parametrize(
    ("journal_status", "broker_lists_it", "look_up"),
    [
        ("accepted", True, False),  # both say working
        ("accepted", False, True),  # filled or canceled at the broker meanwhile
        ("partially_filled", False, True),
        ("submitted", False, True),
        ("submitting", False, False),  # in flight: its delivery settles it
        ("unknown", False, False),  # settled by lookup elsewhere
        ("filled", False, False),
        ("canceled", True, False),  # the broker's list decides nothing for a final order
    ],
)
def test_which_journal_orders_are_looked_up(journal_status, broker_lists_it, look_up):
    journal = [{"client_order_id": "a", "status": journal_status}]
    broker = [state("a")] if broker_lists_it else []
    assert orders_to_look_up(journal, broker) == (["a"] if look_up else [])


def test_an_order_at_the_broker_that_tradepipe_never_placed_is_reported():
    found = foreign_orders("paper", "AAPL", [state("ours"), state("manual-1")], known=["ours"])
    assert found == [Difference("foreign-order", "paper", "AAPL", "manual-1", "none", "accepted")]
    assert not found[0].blocks_entries


@pytest.mark.parametrize(
    ("journal_status", "broker_status", "broker_filled", "described"),
    [
        ("canceled", OrderStatus.ACCEPTED, "0", "journal canceled, broker accepted"),
        ("filled", OrderStatus.ACCEPTED, "0", "journal filled, broker accepted"),
        ("rejected", OrderStatus.SUBMITTED, "0", "journal rejected, broker submitted"),
        ("expired", OrderStatus.PARTIALLY_FILLED, "2", "journal expired, broker partially_filled"),
        ("filled", OrderStatus.PARTIALLY_FILLED, "5", None),  # its fills cover the 5 sent
        ("filled", OrderStatus.ACCEPTED, "5", None),
        ("accepted", OrderStatus.ACCEPTED, "0", None),  # both say working
        ("partially_filled", OrderStatus.PARTIALLY_FILLED, "2", None),
        ("submitting", OrderStatus.ACCEPTED, "0", None),  # in flight: its delivery settles it
        ("unknown", OrderStatus.ACCEPTED, "0", None),  # settled by lookup elsewhere
        (None, OrderStatus.ACCEPTED, "0", None),  # not ours: a foreign order, reported as such
    ],
)
def test_an_order_the_journal_has_done_but_the_broker_still_works_is_reported(
    journal_status, broker_status, broker_filled, described
):
    broker = [OrderState("a", broker_status, filled_quantity=D(broker_filled), ticker="AAPL")]
    journaled = {} if journal_status is None else {"a": {"status": journal_status, "quantity": "5"}}
    found = still_open("paper", "AAPL", broker, journaled)
    expected = f"paper order a still open at the broker: {described}" if described else None
    assert [d.describe() for d in found] == ([expected] if expected else [])
    assert all(d.kind == "still-open" and not d.blocks_entries for d in found)


@pytest.mark.parametrize(
    ("journal", "broker", "described"),
    [
        ("5", "5", None),
        ("0", "0", None),
        ("5", "3", "paper position AAPL: journal 5, broker 3"),
        ("0", "-2", "paper position AAPL: journal 0, broker -2"),
        ("1.50", "1.5", None),
    ],
)
def test_a_position_drift_is_a_difference_that_blocks_entries(journal, broker, described):
    drift = position_drift("paper", "AAPL", D(journal), D(broker))
    assert [d.describe() for d in drift] == ([described] if described else [])
    assert all(d.blocks_entries for d in drift)


# -- the engine against the real paper broker -----------------------------------------------


def buy(quantity=5, **extra):
    return {"ticker": "AAPL", "action": "buy", "quantity": quantity, "signalPrice": 100, **extra}


def test_a_fill_whose_event_was_lost_is_found_and_journaled(tmp_path):
    async def test(h: Harness):
        (signal,) = await h.send(buy(orderType="limit", limitPrice=99))
        broker = h.engine.brokers["paper"]
        broker.inject(Fault.LOSE_FILLS)
        assert await broker.observe_price("AAPL", D(98)) == []  # filled, nobody told
        (order,) = h.journal.orders(signal_id=signal)
        assert order["status"] == "accepted" and h.position() == 0
        (difference,) = await h.engine.reconcile_account("paper")
        assert difference.describe().endswith("journal accepted, broker filled")
        (order,) = h.journal.orders(signal_id=signal)
        assert order["status"] == "filled" and h.position() == 5
        assert ("paper", "AAPL") not in h.engine.blocked  # the fill explained the position

    run(write_config(tmp_path), test)


def test_an_order_canceled_at_the_broker_is_journaled_canceled(tmp_path):
    async def test(h: Harness):
        (signal,) = await h.send(buy(orderType="limit", limitPrice=99))
        (order,) = h.journal.orders(signal_id=signal)
        await h.engine.brokers["paper"].cancel(order["client_order_id"])  # by hand, say
        await h.engine.reconcile_account("paper")
        (order,) = h.journal.orders(signal_id=signal)
        assert order["status"] == "canceled"

    run(write_config(tmp_path), test)


def test_an_order_journaled_done_but_still_open_at_the_broker_is_reported_not_rewritten(
    tmp_path,
):
    """The journal says canceled (a cancel answer that did not hold, say); the broker still works
    the order. Reconciliation reports it, journals the event and shows it in health, leaves the
    journal's status alone (the broker's next answer settles it) and blocks nothing."""

    async def test(h: Harness):
        (signal,) = await h.send(buy(orderType="limit", limitPrice=99))
        (order,) = h.journal.orders(signal_id=signal)
        cid = order["client_order_id"]
        h.journal.update_order(cid, status="canceled", updated_at=h.clock())
        (difference,) = await h.engine.reconcile_account("paper")
        assert difference.describe() == (
            f"paper order {cid} still open at the broker: journal canceled, broker accepted"
        )
        assert h.journal.order_by_client_id(cid)["status"] == "canceled"
        assert h.engine.blocked == {}
        (event,) = [e for e in h.journal.events() if e["kind"] == "reconciliation"]
        assert json.loads(event["detail"])["kind"] == "still-open"
        health = h.engine.health()["brokers"]["paper"]["differences"]
        assert health == [
            {"ticker": "AAPL", "difference": difference.describe(), "blocks_entries": False}
        ]
        # The broker's next answer settles it: a price that fills the order, heard in a signal.
        await h.send({"ticker": "AAPL", "action": "cancel", "signalPrice": 98})
        assert h.journal.order_by_client_id(cid)["status"] == "filled" and h.position() == 5
        assert await h.engine.reconcile_account("paper") == []
        assert h.engine.health()["brokers"]["paper"]["differences"] == []

    run(write_config(tmp_path), test)


def test_a_position_drift_blocks_entries_but_not_exits_until_it_agrees_again(tmp_path):
    async def test(h: Harness):
        await h.send(buy())
        # Someone sells 2 by hand at the broker.
        manual = OrderRequest("manual-1", "paper", "AAPL", Side.SELL, D(2))
        await h.engine.brokers["paper"].submit(manual)
        differences = await h.engine.reconcile_account("paper")
        assert [d.describe() for d in differences] == ["paper position AAPL: journal 5, broker 3"]
        (add,) = await h.send(buy(1, action="add"))
        ((status, reason),) = h.deliveries(add)
        assert status == "rejected" and "new entries on AAPL are blocked" in reason
        assert "journal 5, broker 3" in reason
        (exit_,) = await h.send({"ticker": "AAPL", "action": "exit", "signalPrice": 100})
        assert h.deliveries(exit_)[0][0] == "submitted"
        events = [e for e in h.journal.events() if e["kind"] == "reconciliation"]
        assert json.loads(events[0]["detail"])["broker"] == "3"
        # The exit sold 5 of the broker's 3: the operator squares it by hand, and it agrees.
        await h.engine.brokers["paper"].submit(
            OrderRequest("manual-2", "paper", "AAPL", Side.BUY, D(2), OrderType.MARKET)
        )
        assert await h.engine.reconcile_account("paper") == []
        assert ("paper", "AAPL") not in h.engine.blocked

    run(write_config(tmp_path), test)


def test_blocking_can_be_turned_off(tmp_path):
    config = write_config(tmp_path, extra="[reconciliation]\nblock_entries_on_mismatch = false\n")

    async def test(h: Harness):
        await h.send(buy())
        manual = OrderRequest("manual-1", "paper", "AAPL", Side.SELL, D(2))
        await h.engine.brokers["paper"].submit(manual)
        assert len(await h.engine.reconcile_account("paper")) == 1
        (add,) = await h.send(buy(1, action="add"))
        assert h.deliveries(add)[0][0] == "submitted"

    run(config, test)


def test_a_broker_down_is_reported_never_silently_traded_around(tmp_path):
    async def test(h: Harness):
        await h.send(buy())
        broker = h.engine.brokers["paper"]
        broker.inject(Fault.DOWN, "connection refused")
        await h.engine.reconcile_everything()
        await h.engine.drain()
        health = h.engine.broker_health["paper"]
        assert health["ok"] is False and "connection refused" in health["error"]
        (later,) = await h.send(buy(1))
        ((status, reason),) = h.deliveries(later)
        assert status == "failed" and "connection refused" in reason
        broker.heal()
        await h.engine.reconcile_everything()
        await h.engine.drain()
        assert h.engine.broker_health["paper"]["ok"] is True

    run(write_config(tmp_path), test)


def test_periodic_reconciliation_in_serve_blocks_and_reports_on_healthz(tmp_path):
    config = write_config(tmp_path, extra="[reconciliation]\ninterval = 0.2\n")
    with Daemon(config, free_port()) as daemon:
        tradepipe(config, "send", json.dumps(buy()), "--wait")
        # A trade by hand at the broker (the paper broker's books live in the journal file).
        db = sqlite3.connect(tmp_path / "journal.db")
        db.execute("UPDATE paper_positions SET quantity = '3' WHERE ticker = 'AAPL'")
        db.commit()
        db.close()
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(f"{daemon.url}/healthz", timeout=5) as response:
                health = json.loads(response.read())
            if health["blocked"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert health["status"] == "degraded"
        assert health["blocked"] == [
            {
                "account": "paper",
                "ticker": "AAPL",
                "reason": "paper position AAPL: journal 5, broker 3",
            }
        ]
        refused = tradepipe(config, "send", json.dumps(buy(1, action="add")), "--wait")
        assert "rejected" in refused.stdout and "new entries on AAPL are blocked" in refused.stdout


def test_reconcile_runs_at_start_before_any_signal(tmp_path):
    async def test(h: Harness):
        await h.send(buy())
        await h.engine.stop()
        h.journal.conn.execute("UPDATE paper_positions SET quantity = '4'")
        h.journal.conn.commit()
        h.engine = h.new_engine()
        await h.engine.start()
        assert ("paper", "AAPL") in h.engine.blocked

    run(write_config(tmp_path), test)


def test_status_reports_the_daemon_brokers_blocks_and_pending_work(tmp_path):
    config = write_config(tmp_path, subscription="auto_submit = false\n")
    tradepipe(config, "send", json.dumps(buy()))  # parked for approval
    answer = tradepipe(config, "status", "--json", check=False)
    assert answer.returncode == 1  # no daemon
    offline = json.loads(answer.stdout)
    assert offline["daemon"]["running"] is False
    assert offline["accounts"] == [
        {
            "name": "paper",
            "broker": "paper",
            "ok": None,
            "checked_at": None,
            "error": None,
            "differences": [],
            "state": None,  # not checked: no daemon
            "stream": None,
        }
    ]
    assert offline["pending"] == {
        "signals": 0,
        "approvals": 1,
        "unknown_orders": 0,
        "held_orders": 0,
        "notifications": 0,
        "notifications_given_up": 0,
    }
    with Daemon(config, free_port()):
        live = json.loads(tradepipe(config, "status", "--json").stdout)
        text = tradepipe(config, "status").stdout
    assert live["daemon"]["running"] is True and live["accounts"][0]["ok"] is True
    assert "account paper (paper): ok" in text and "1 approvals" in text


def test_a_broker_down_at_start_is_reconnected_with_backoff_and_reconciled(tmp_path):
    async def test(h: Harness):
        await h.send(buy())
        await h.engine.stop()
        h.engine = h.new_engine()
        h.engine.reconnect_backoff = (0.02, 0.08)
        broker = h.engine.brokers["paper"]
        broker.inject(Fault.DOWN, "connection refused")
        await h.engine.start()  # serves on; the broker is reported down
        assert h.engine.health()["status"] == "degraded"
        (during,) = await h.send(buy(1, action="add"))
        assert h.deliveries(during)[0][0] == "failed"
        await asyncio.sleep(0.1)
        await h.engine.reconnect_due()  # still down: the wait doubles, up to its cap
        assert h.engine.broker_health["paper"]["ok"] is False
        broker.heal()
        await asyncio.sleep(0.1)
        await h.engine.reconnect_due()
        await h.engine.drain()
        assert h.engine.health()["status"] == "ready"
        (after,) = await h.send(buy(1, action="add"))
        assert h.deliveries(after)[0][0] == "submitted" and h.position() == 6

    run(write_config(tmp_path), test)
