"""How many SQL statements one signal costs the journal (issue 15: what a delivery wrote down is
the truth in memory; it is not read back). After one warm-up signal on another ticker (what is
read once per journal and broker is not this signal's cost), every statement on the journal's
own connection is counted with `set_trace_callback`, from the webhook's journaling of the
signal (its dedupe look-up and its insert: the journal calls the webhook makes) until `drain()`
returns: the delivery, its orders, the paper broker's books (same file), fills, positions,
audit events, and the transaction control (SAVEPOINT / COMMIT count too).
Run with `-s` to see the statements grouped by kind."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.helpers import queued_delivery, write_config
from tests.test_engine import Harness, run
from tradepipe.core.audit import verify_chain
from tradepipe.core.model import OrderRequest, OrderRole, OrderType, Side, TimeInForce
from tradepipe.core.signal import parse_signal, signal_to_json
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

# Issue 15 asked for at most 25 for the buy (its baseline: 78, 31 SELECTs). Measured before the
# first cut: buy 83, bracket 152; before the second (with issue 16's equity snapshot after the
# fill): buy 75 (21 SELECTs, 10 SAVEPOINT + 10 RELEASE, 2 BEGIN), bracket 130. Now: buy 36,
# bracket 68. What went:
# - transaction control (journal/group_commit.py): a unit's savepoint opens the transaction (no
#   BEGIN) and is not released when the unit ends well (COMMIT releases them all; a long
#   transaction folds them every 16, one signal's never), and a write that is one statement
#   takes no savepoint inside the open transaction (execute_one);
# - reads of what this process wrote: the paper books' cash, positions, marks and working
#   orders (journal/paper_books.py), the journal's positions (journal/positions.py) and its
#   orders not yet done with (journal/orders.py) are kept in memory as written, read again
#   after any rollback, where an engine starts, and where reconciliation lists all positions;
#   a new paper order is answered from the rows its writes gave back (RETURNING); the audit
#   chain's head is read inside the first event's INSERT of each transaction
#   (journal/events.py).
# The buy's 36 are 24 writes, 8 SAVEPOINTs, 2 COMMITs and 2 reads. The writes: the signal, its
# delivery and the delivery's 2 updates (planned, submitted), the order and its update (filled),
# the fill and the position it moves, the signal marked processed, the equity snapshot, 8 audit
# events (one per change above but the fill's position and the snapshot: the audit trail), and
# 6 of the paper broker's own books (its mark, the order and its update, its fill, position and
# cash: the broker's side of the wire, kept apart from the journal's). The 8 savepoints are one
# per unit of more than one write: a unit must roll back alone. The 2 commits are the webhook's
# (an acknowledged signal is on disk, SPEC §3) and the write-ahead barrier before the broker
# hears of the order. The 2 reads: the webhook's dedupe look-up (a duplicate from another
# process's past is on disk only), and the paper broker's idempotency check of the client order
# id (any order it ever took, not only the working ones kept in memory). So 25 is out of reach
# without dropping a write; what could still go: the paper order inserted already filled (one
# UPDATE; the partial-fill double in test_brackets.py fills an order that must exist first), and
# the delivery's outcome and the signal processed in one unit (one SAVEPOINT).
# The emulated bracket's 68 are the buy's 36, 12 for each of its 2 legs (its order row and
# event, in the entry's unit; its updates to submitting and to accepted, each a unit of UPDATE
# and event; the paper broker's idempotency read and its order row, a unit; the COMMIT before
# it is sent), and 8 reads of the emulator: the entry by id and each leg's siblings (done
# orders are not kept in memory).
BUY_LIMIT = 36
BRACKET_LIMIT = 68


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
            body = json.dumps(payload)
            # The webhook's insert with its dedupe look-up in it (a body without `id` is
            # deduplicated by its hash, within the strategy's window).
            signal_id = self.journal.record_new_signal(
                "body_hash",
                self.clock() - timedelta(seconds=5),
                strategy="trend",
                received_at=self.clock(),
                source="test",
                body=body,
                payload=json.dumps(signal_to_json(signal)),
                ticker=signal.ticker,
                action=signal.action,
                body_hash=hashlib.sha256(body.encode()).hexdigest(),
                status="accepted",
                http_status=200,
            )
            assert signal_id is not None
            await self.journal.durable()  # the webhook answers once the signal is on disk
            self.engine.enqueue(signal_id, "trend", signal)
            await self.engine.drain()
            await self.journal.durable()  # and what it wrote is committed: the last COMMIT too
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
    signal_id, delivery = queued_delivery(journal, NOW, payload="{}", ticker="AAPL", action="buy")
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


def test_waiting_events_survive_a_later_unit_that_fails_and_a_failed_write_leaves_none(tmp_path):
    """Events wait in memory for the commit (journal/group_commit.py): a unit that fails takes
    its own events only, even when an event written at once inside it (an operator action,
    whose id is needed) wrote the earlier units' waiting events along; a one-statement write
    that fails queues no event; and readers on the connection see what is waiting."""

    async def main():
        journal = Journal.open(tmp_path / "journal.db")
        journal.group_commits()
        signal_id, delivery = queued_delivery(journal, NOW, payload="{}", ticker="AAPL")
        with pytest.raises(RuntimeError), journal.transaction():
            journal.update_delivery(delivery["id"], status="planned", updated_at=NOW)
            journal.record_operator_action("note", "lost", NOW)
            raise RuntimeError("boom")
        request = OrderRequest(
            client_order_id="tp-1-e",
            account="paper",
            ticker="AAPL",
            side=Side.BUY,
            quantity=D(1),
            order_type=OrderType.MARKET,
            time_in_force=TimeInForce.DAY,
            role=OrderRole.ENTRY,
        )
        recorder = Recorder(journal, Current(None, {}), lambda: NOW, settle_due=lambda a, t: None)
        recorder.journal_order_row(request, delivery=delivery, signal_id=signal_id)
        with pytest.raises(sqlite3.IntegrityError):  # the same client order id again
            recorder.journal_order_row(request, delivery=delivery, signal_id=signal_id)
        # Read on the daemon's connection before any commit: the waiting events are in.
        waiting = [(e["kind"], e["subject"]) for e in journal.events()]
        await journal.durable()
        events = journal.events()
        assert waiting == [(e["kind"], e["subject"]) for e in events]
        assert [(e["kind"], json.loads(e["detail"]).get("status")) for e in events] == [
            ("signal", "accepted"),
            ("delivery", "queued"),
            ("order", "submitting"),
        ]
        assert verify_chain(events).ok, verify_chain(events)
        (delivery_row,) = journal.deliveries_for([signal_id])
        assert delivery_row["status"] == "queued"  # the failed unit's update is gone too
        journal.close()

    asyncio.run(main())
