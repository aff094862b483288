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
# first cut: buy 83, bracket 152; then 75 and 130 (with issue 16's equity snapshot); then 36
# and 68 (not counting the last COMMIT, which this test now waits for: 37 and 69); now 25 and
# 50, counted to the last COMMIT. What went:
# - transaction control (journal/group_commit.py): a unit's savepoint opens the transaction (no
#   BEGIN) and is not released (COMMIT releases them all); a unit that is one write statement
#   and its audit event takes no savepoint inside the open transaction (Journal.write_one):
#   SQLite undoes a failed statement by itself;
# - audit events wait in memory for their transaction's commit and go in with one statement
#   (journal/events.py), chained from the head the last commit left (checked by the insert);
# - reads of what this process wrote (journal/paper_books.py, positions.py, orders.py keep it
#   in memory as written; a new row is answered by RETURNING);
# - reads folded into the write that needs them: the webhook's dedupe look-up is part of the
#   signal's INSERT (… WHERE NOT EXISTS), and the paper broker learns that an order is new
#   from its INSERT (ON CONFLICT DO NOTHING), not from a read first;
# - the paper order that fills at once is inserted filled (no INSERT then UPDATE).
# The buy's 25, in its three transactions:
# - the webhook's (an acknowledged signal is on disk, SPEC §3): SAVEPOINT, the signal, its
#   event, COMMIT (4);
# - the write-ahead barrier before the broker hears of the order: SAVEPOINT, the delivery, the
#   paper mark of signalPrice, the delivery planned, the order, their 3 events, COMMIT (7);
# - the broker's answer: SAVEPOINT, the paper broker's books (its order, filled; its fill,
#   position and cash), SAVEPOINT for the recorder's unit (the order filled, the fill, the
#   position), the delivery submitted, the signal processed, the equity snapshot, their 4
#   events, COMMIT (14).
# No SELECT is left. What would still go only by dropping a write: the paper mark (the paper
# broker's price for the ticker) or the equity snapshot after a fill (issue 16).
# The emulated bracket's 50 add its 2 legs' order rows (in the entry's unit), the emulator's
# reads of the entry and each leg's siblings (done orders are not kept in memory), each leg's
# updates to submitting and to accepted and its paper order row, and their commits.
BUY_LIMIT = 25
BRACKET_LIMIT = 50


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


def test_a_subject_that_cannot_be_stored_fails_its_unit_and_the_chain_holds(tmp_path):
    async def main():
        journal = Journal.open(tmp_path / "journal.db")
        journal.group_commits()
        journal.record_operator_action("note", "one", NOW)
        with pytest.raises(UnicodeEncodeError):
            journal.record_operator_action("note", "bad \udc80", NOW)
        with pytest.raises(UnicodeEncodeError), journal.transaction():
            journal.record_reconciliation("AAPL \ud800", NOW)
        await journal.durable()
        events = journal.events()
        assert [e["subject"] for e in events] == ["one"]
        assert verify_chain(events).ok
        journal.close()

    asyncio.run(main())
