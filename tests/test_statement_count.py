"""How many SQL statements one signal costs the journal (issue 15: what a delivery wrote down is
the truth in memory; it is not read back). After one warm-up signal on another ticker (what is
read once per journal and broker is not this signal's cost), every statement on the journal's
own connection is counted with `set_trace_callback`, from the webhook's journaling of the
signal (its dedupe look-up and its insert: the journal calls the webhook makes) until `drain()`
returns: the delivery, its orders, the paper broker's books (same file), fills, positions,
audit events, and the transaction control (BEGIN / SAVEPOINT / RELEASE / COMMIT count too).
Run with `-s` to see the statements grouped by kind."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.helpers import write_config
from tests.test_engine import Harness, run
from tradepipe.core.audit import verify_chain
from tradepipe.core.model import OrderRequest, OrderRole, OrderType, Side, TimeInForce
from tradepipe.core.signal import parse_signal
from tradepipe.engine.current import Current
from tradepipe.engine.recorder import Recorder
from tradepipe.journal import Journal
from tradepipe.journal.events import append as append_event

NOW = datetime.fromisoformat("2026-11-21T12:00:00+00:00")

BUY = {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100}
BRACKET = {
    **BUY,
    "takeProfit": {"percent": 10},
    "stopLoss": {"amount": 5},
}

# Issue 15 asked for at most 25 for the buy (its baseline: 78, 31 SELECTs). Measured here before
# the cut: buy 83 (38 SELECTs), emulated bracket 152 (23 SELECTs of `orders`); after it: buy 66
# (21 SELECTs), bracket 121 (13 of `orders`). 25 is out of reach without removing writes: the
# buy's 66 are 23 writes (the signal, the delivery and its 2 updates, the order and its update,
# the fill, the position, 8 audit events, 6 writes of the paper books, the signal processed),
# 22 of transaction control (9 units of SAVEPOINT + RELEASE, 2 BEGIN, 2 COMMIT) and 21 reads:
# the dedupe look-up; the ticker's unknown orders and held legs; the planner's position, mark
# and open orders at the paper broker; the mark's check for working orders; the paper broker's
# idempotency check, mark, buying power (position, all positions, cash), its fill (cash,
# position, the order's legs and parent) and its answer read back (order, fills); the journal
# position the fill moves; 2 audit chain heads (one per transaction). Next: the delivery's
# outcome and the signal processed in one unit (engine/lanes.py), and the paper broker's answer
# and cash taken from what it just wrote (its `_fill` is overridden by a test double in
# test_brackets.py, so its signature stayed).
# Issue 16 added the equity snapshot after a fill (SPEC §13), taken by the engine's equity task
# (engine/equity.py) right after the fill is journaled, so inside this window: +9 for each
# signal below, all after the order was sent. The paper broker's account() reads cash and all
# positions, the marks of those positions (AAPL, MSFT), then cash and positions again for buying
# power (6 SELECTs), and the row is written in one unit (SAVEPOINT, INSERT equity_snapshots,
# RELEASE: 3).
BUY_LIMIT = 66 + 9
BRACKET_LIMIT = 121 + 9


class Counting(Harness):
    def __init__(self, config_path: Path) -> None:
        super().__init__(config_path)
        self.statements: list[str] = []

    async def count(self, payload: dict) -> list[str]:
        """The statements one signal costs, from the webhook's journaling to the drain."""
        self.statements = []
        self.journal.conn.set_trace_callback(self.statements.append)
        try:
            signal = parse_signal(payload).signal
            assert signal is not None
            # The webhook's dedupe look-up (a body without `id` is deduplicated by its hash).
            self.journal.find_signal_by_body(
                "trend", "0" * 64, self.clock() - timedelta(seconds=5)
            )
            signal_id, signal = self.journal_signal(payload)
            await self.journal.durable()  # the webhook answers once the signal is on disk
            self.engine.enqueue(signal_id, "trend", signal)
            await self.engine.drain()
        finally:
            self.journal.conn.set_trace_callback(None)
        return list(self.statements)


def kind(statement: str) -> str:
    words = statement.split()
    head = words[0].upper()
    if head in ("SELECT", "UPDATE", "DELETE") or head == "INSERT":
        match = re.search(r"\b(?:FROM|UPDATE|INTO)\s+(\w+)", statement, re.IGNORECASE)
        return f"{head} {match.group(1) if match else '?'}"
    return head


def show(title: str, statements: list[str]) -> None:
    kinds = Counter(kind(s) for s in statements)
    print(f"\n{title}: {len(statements)} statements")
    for name, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:3} {name}")
    for s in statements:
        print("     ", " ".join(s.split())[:160])


def measure(config_path: Path, payload: dict) -> list[str]:
    counted: list[list[str]] = []

    async def test(h: Counting):
        # A first signal on another ticker: what is read once per journal and broker (the
        # journal's instance id, the paper books' legacy spellings) is not this signal's cost.
        await h.send({"ticker": "MSFT", "action": "buy", "quantity": 1, "signalPrice": 50})
        counted.append(await h.count(payload))
        assert h.position() == 5  # the buy went through
        (delivery,) = h.journal.deliveries_for([h.journal.signals()[0]["id"]])
        assert delivery["status"] == "submitted"

    run(config_path, test, Counting)
    return counted[0]


def test_one_plain_paper_market_buy_stays_within_its_measured_count(tmp_path):
    statements = measure(write_config(tmp_path), BUY)
    show("plain paper market buy", statements)
    assert len(statements) <= BUY_LIMIT, json.dumps(statements, indent=1)


def test_an_emulated_bracket_buy_stays_within_its_measured_count(tmp_path):
    config = write_config(tmp_path, account="native_brackets = false\n")
    statements = measure(config, BRACKET)
    show("emulated bracket buy", statements)
    assert len(statements) <= BRACKET_LIMIT, json.dumps(statements, indent=1)


# -- what is no longer read back is what a read would answer ----------------------------------


def test_the_rows_a_delivery_holds_are_the_rows_the_journal_reads(tmp_path):
    journal = Journal.open(tmp_path / "journal.db")
    signal_id = journal.record_signal(
        strategy="trend",
        received_at=NOW,
        source="test",
        body="{}",
        payload="{}",
        ticker="AAPL",
        action="buy",
        status="accepted",
        http_status=200,
    )
    delivery = journal.ensure_delivery(
        signal_id=signal_id,
        subscription="trend-paper",
        account="paper",
        ticker="AAPL",
        status="queued",
        created_at=NOW,
        updated_at=NOW,
    )
    assert delivery == journal.delivery(delivery["id"])
    request = OrderRequest(
        client_order_id="tp-1-e",
        account="paper",
        ticker="AAPL",
        side=Side.BUY,
        quantity=D("2.50"),
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.DAY,
        role=OrderRole.ENTRY,
        limit_price=D("101.10"),
        extended_hours=True,
    )
    recorder = Recorder(journal, Current(None, {}), lambda: NOW, settle_due=lambda a, t: None)
    row = recorder.journal_order_row(request, delivery=delivery, signal_id=signal_id)
    assert row == journal.order_by_client_id("tp-1-e")
    assert list(row) == list(journal.order_by_client_id("tp-1-e") or {})
    journal.close()


def test_the_audit_chain_holds_across_a_rolled_back_unit_and_another_writer(tmp_path):
    async def main():
        journal = Journal.open(tmp_path / "journal.db")
        journal.group_commits()
        journal.record_operator_action("note", "one", NOW)
        with pytest.raises(RuntimeError), journal.transaction():
            journal.record_operator_action("note", "lost", NOW)
            raise RuntimeError("boom")
        journal.record_operator_action("note", "two", NOW)
        await journal.durable()
        other = sqlite3.connect(journal.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        append_event(other, "operator", "from another connection", {}, NOW)
        other.execute("COMMIT")
        other.close()
        journal.record_operator_action("note", "three", NOW)
        await journal.durable()
        events = journal.events()
        assert [e["subject"] for e in events] == [
            "one",
            "two",
            "from another connection",
            "three",
        ]
        assert verify_chain(events).ok, verify_chain(events)
        journal.close()

    asyncio.run(main())
