"""What is kept in memory as written (issue 15): the paper books' cash, positions and marks
(journal/paper_books.py), the journal's own positions (journal/positions.py), and a new paper
order's answer. They are read once and then never read back, so what memory holds must be what
the file holds — after trades, after a rolled-back write, across two brokers on one journal —
and a change made to the file by hand is seen where reconciliation starts (`positions()`)."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from datetime import datetime
from decimal import Decimal as D

import pytest

from tests.helpers import FixedClock
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.core.model import OrderRequest, OrderStatus, OrderType, Side
from tradepipe.journal import Journal

NOW = datetime.fromisoformat("2026-11-20T15:00:00+00:00")


def order(cid: str, side: Side = Side.BUY, quantity: str = "5", ticker="AAPL") -> OrderRequest:
    return OrderRequest(
        client_order_id=cid, account="paper", ticker=ticker, side=side, quantity=D(quantity)
    )


def as_read_anew(path) -> tuple:
    """What a new process reads from the file: cash, positions and marks."""
    journal = Journal.open(path)
    try:
        broker = PaperBroker("paper", journal, cash=D(1), clock=FixedClock())
        asyncio.run(broker.connect())
        books = asyncio.run(books_of(broker))
    finally:
        journal.close()
    return books


async def books_of(broker: PaperBroker) -> tuple:
    account = await broker.account()
    held = [(p.ticker, p.quantity, p.average_price) for p in broker.ledger.positions()]
    marks = {t: await broker.quote(t) for t in ("AAPL", "MSFT")}
    return account.cash, account.equity, held, marks


@pytest.mark.parametrize("grouped", [True, False], ids=["group commit", "plain"])
def test_memory_holds_what_the_file_holds_after_trades_and_a_rolled_back_fill(tmp_path, grouped):
    async def main():
        journal = Journal.open(tmp_path / "j.db")
        if grouped:
            journal.group_commits()
        broker = PaperBroker("paper", journal, cash=D(10000), clock=FixedClock())
        await broker.connect()
        await broker.observe_price("AAPL", D("100.50"))
        await broker.observe_price("MSFT", D(50))
        await broker.submit(order("a"))
        await broker.submit(order("m", ticker="MSFT", side=Side.SELL, quantity="3"))
        await broker.observe_price("AAPL", D(101))
        await broker.submit(order("b", side=Side.SELL, quantity="2"))
        before = await books_of(broker)
        # A fill booked inside a unit that then fails is undone in the file: memory follows.
        with pytest.raises(RuntimeError), journal.transaction():
            broker.matching.fill(order("lost"), D(101), NOW)
            journal.set_paper_mark("paper", "AAPL", D(999), NOW)
            raise RuntimeError("boom")
        assert await books_of(broker) == before
        await journal.durable()
        journal.close()
        return before

    before = asyncio.run(main())
    cash, equity, held, marks = before
    assert held == [("AAPL", D(3), D("100.50")), ("MSFT", D(-3), D(50))]
    assert cash == D(10000) - 5 * D("100.50") + 2 * D(101) + 3 * 50
    assert equity == cash + 3 * 101 - 3 * 50
    assert marks == {"AAPL": D(101), "MSFT": D(50)}
    assert as_read_anew(tmp_path / "j.db") == before


def test_two_paper_brokers_on_one_journal_see_each_others_fills(tmp_path):
    journal = Journal.open(tmp_path / "j.db")
    one = PaperBroker("paper", journal, cash=D(10000), clock=FixedClock())
    other = PaperBroker("paper", journal, cash=D(10000), clock=FixedClock())
    asyncio.run(one.connect())
    asyncio.run(other.connect())
    asyncio.run(one.observe_price("AAPL", D(100)))
    assert asyncio.run(other.quote("AAPL")) == D(100)
    asyncio.run(other.submit(order("x")))
    assert asyncio.run(one.position("AAPL")).quantity == D(5)
    assert asyncio.run(one.account()).cash == D(9500)
    journal.close()


def test_a_change_made_in_the_file_by_hand_is_seen_when_all_positions_are_listed(tmp_path):
    journal = Journal.open(tmp_path / "j.db")
    broker = PaperBroker("paper", journal, cash=D(10000), clock=FixedClock())
    asyncio.run(broker.connect())
    asyncio.run(broker.observe_price("AAPL", D(100)))
    asyncio.run(broker.submit(order("x")))
    by_hand = sqlite3.connect(tmp_path / "j.db")
    by_hand.execute("UPDATE paper_positions SET quantity = '3' WHERE ticker = 'AAPL'")
    by_hand.commit()
    by_hand.close()
    # Reconciliation lists every position first: the file is read again there.
    assert [p.quantity for p in asyncio.run(broker.positions())] == [D(3)]
    assert asyncio.run(broker.position("AAPL")).quantity == D(3)
    journal.close()


def test_a_new_orders_answer_is_what_reading_it_back_answers(tmp_path):
    """submit_bracket and replace answer a new order from the rows they wrote (no read back):
    the same states a later get_order reads, for a filled entry that releases its legs, a
    rejected one whose legs are cancelled, a resting one, and a replacement."""
    journal = Journal.open(tmp_path / "j.db")
    journal_broker = PaperBroker("paper", journal, cash=D(10000), clock=FixedClock())
    asyncio.run(journal_broker.connect())
    asyncio.run(journal_broker.observe_price("AAPL", D(100)))

    def legs(prefix: str, ticker: str = "AAPL") -> tuple[OrderRequest, ...]:
        take = OrderRequest(
            client_order_id=f"{prefix}-t", account="paper", ticker=ticker, side=Side.SELL,
            quantity=D(5), order_type=OrderType.LIMIT, limit_price=D(110),
        )  # fmt: skip
        trail = OrderRequest(
            client_order_id=f"{prefix}-s", account="paper", ticker=ticker, side=Side.SELL,
            quantity=D(5), order_type=OrderType.TRAILING_STOP, trail_amount=D(2),
        )  # fmt: skip
        return take, trail

    async def answers_and_reads(entry: OrderRequest, children) -> tuple[list, list]:
        answered = await journal_broker.submit_bracket(entry, children)
        ids = [entry.client_order_id, *(c.client_order_id for c in children)]
        return answered, [await journal_broker.get_order(cid) for cid in ids]

    filled, read = asyncio.run(answers_and_reads(order("f"), legs("f")))
    assert filled == read and filled[0].status is OrderStatus.FILLED and filled[0].fills
    # No mark for MSFT: the market entry is rejected and takes its held legs along.
    rejected, read = asyncio.run(answers_and_reads(order("r", ticker="MSFT"), legs("r", "MSFT")))
    assert rejected == read and rejected[0].status is OrderStatus.REJECTED
    assert rejected[1].status is OrderStatus.CANCELED
    resting = replace(order("w"), order_type=OrderType.LIMIT, limit_price=D(90))
    rests, read = asyncio.run(answers_and_reads(resting, ()))
    assert rests == read and rests[0].status is OrderStatus.ACCEPTED
    moved = replace(resting, client_order_id="w2", limit_price=D(101))
    answered = asyncio.run(journal_broker.replace("w", moved))
    assert answered == asyncio.run(journal_broker.get_order("w2"))
    assert answered.status is OrderStatus.FILLED
    journal.close()


@pytest.mark.parametrize("grouped", [True, False], ids=["group commit", "plain"])
def test_the_journaled_positions_in_memory_follow_a_rolled_back_fill(tmp_path, grouped):
    """The journal's own positions are kept in memory as `record_fill` writes them; a fill
    undone by its unit's rollback is undone in memory too."""

    async def main():
        journal = Journal.open(tmp_path / "j.db")
        if grouped:
            journal.group_commits()
        signal_id = journal.record_signal(
            strategy="s", received_at=NOW, source="test", body="{}", payload="{}",
            ticker="AAPL", action="buy", status="accepted", http_status=200,
        )  # fmt: skip
        order_id = journal.insert_order(
            client_order_id="c1", signal_id=signal_id, account="paper", ticker="AAPL",
            side="buy", quantity=D(5), order_type="market", time_in_force="day",
            role="entry", status="submitted", created_at=NOW, updated_at=NOW,
        )  # fmt: skip

        def fill(n: int, quantity: str, price: str) -> bool:
            return journal.record_fill(
                fill_id=f"f{n}", order_id=order_id, account="paper", ticker="AAPL",
                side="buy", quantity=D(quantity), price=D(price), filled_at=NOW,
            )  # fmt: skip

        assert fill(1, "2", "100.00") and journal.position("paper", "AAPL") == (D(2), D(100))
        with pytest.raises(RuntimeError), journal.transaction():
            fill(2, "3", "110")
            assert journal.position("paper", "AAPL") == (D(5), D(106))
            raise RuntimeError("boom")
        assert journal.position("paper", "AAPL") == (D(2), D(100))
        assert fill(3, "1", "103") and journal.position("paper", "AAPL") == (D(3), D(101))
        await journal.durable()
        journal.close()

    asyncio.run(main())
    again = Journal.open(tmp_path / "j.db")
    assert again.position("paper", "AAPL") == (D(3), D(101))
    again.close()


def test_working_paper_orders_in_memory_are_what_the_file_holds(tmp_path):
    """Working orders are kept as their writes give them back: resting, held bracket legs
    released by a fill, one-cancels-other, a trailing stop's best mark, a rolled-back cancel."""

    def limit(cid, side, price, **extra) -> OrderRequest:
        return replace(order(cid, side), order_type=OrderType.LIMIT, limit_price=D(price), **extra)

    async def main():
        journal = Journal.open(tmp_path / "j.db")
        journal.group_commits()
        broker = PaperBroker("paper", journal, cash=D(10000), clock=FixedClock())
        await broker.connect()
        await broker.observe_price("AAPL", D(100))
        trail = replace(order("e-s", Side.SELL), order_type=OrderType.TRAILING_STOP)
        trail = replace(trail, trail_amount=D(3))
        await broker.submit_bracket(limit("e", Side.BUY, 99), (limit("e-t", Side.SELL, 110), trail))
        await broker.submit(limit("r", Side.BUY, 90))
        await broker.observe_price("AAPL", D(98))  # the entry fills: its legs go live
        await broker.observe_price("AAPL", D(104))  # the trailing stop follows to 101
        with pytest.raises(RuntimeError), journal.transaction():
            broker.matching.finish("r", OrderStatus.CANCELED, "lost", NOW)
            raise RuntimeError("boom")
        kept = {s.client_order_id: s for s in await broker.open_orders()}
        assert set(kept) == {"e-t", "e-s", "r"}
        assert "stop at 101" in (kept["e-s"].message or "")
        await journal.durable()
        journal.close()
        return kept

    kept = asyncio.run(main())
    again = Journal.open(tmp_path / "j.db")
    fresh = PaperBroker("paper", again, cash=D(1), clock=FixedClock())
    assert {s.client_order_id: s for s in asyncio.run(fresh.open_orders())} == kept
    moved = {s.client_order_id: s.status for s in asyncio.run(fresh.observe_price("AAPL", D(100)))}
    assert moved == {"e-s": OrderStatus.FILLED, "e-t": OrderStatus.CANCELED}
    assert {s.client_order_id for s in asyncio.run(fresh.open_orders())} == {"r"}
    again.close()


def test_live_journal_orders_in_memory_are_what_the_file_holds(tmp_path):
    """The journal's orders not yet done with are kept as written: a new one, one that ends,
    one that comes back among the live (an id older than the newest), a rolled-back update;
    the lists read from memory are the lists a fresh read of the file gives."""

    def lists(journal: Journal) -> tuple:
        return (
            journal.working_orders("paper"),
            journal.working_orders("paper", "MSFT"),
            journal.unknown_orders("paper", "AAPL"),
            journal.submitting_orders("paper"),
            journal.bracket_children("paper"),
            journal.bracket_children("paper", "AAPL"),
        )

    async def main():
        journal = Journal.open(tmp_path / "j.db")
        journal.group_commits()
        assert lists(journal) == ([], [], [], [], [], [])  # read once, empty

        def new(cid: str, ticker: str = "AAPL", **extra) -> int:
            row = dict(
                client_order_id=cid, account="paper", ticker=ticker, side="buy",
                quantity=D(1), order_type="market", time_in_force="day", role="entry",
                status="submitting", created_at=NOW, updated_at=NOW,
            )  # fmt: skip
            return journal.insert_order(**(row | extra))

        entry = new("e")
        new("t", parent_id=entry, status="held", role="take_profit")
        new("s", parent_id=entry, status="held", role="stop_loss")
        new("m", "MSFT")
        journal.update_order("e", status="filled", filled_quantity=D(1), updated_at=NOW)
        journal.update_order("m", status="accepted", updated_at=NOW)
        new("x")
        journal.update_order("t", status="canceled", updated_at=NOW)
        journal.update_order("t", status="unknown", updated_at=NOW)  # back, older than "x"
        children = journal.bracket_children("paper")
        assert [o["client_order_id"] for o in children] == ["t", "s"]  # oldest first
        with pytest.raises(RuntimeError), journal.transaction():
            journal.update_order("x", status="rejected", updated_at=NOW)
            raise RuntimeError("boom")
        kept = lists(journal)
        assert [o["client_order_id"] for o in kept[0]] == ["m"]
        assert [o["client_order_id"] for o in kept[2]] == ["t"]
        assert [o["client_order_id"] for o in kept[3]] == ["x"]
        assert [o["client_order_id"] for o in kept[4]] == ["t", "s"]  # oldest first
        await journal.durable()
        journal.close()
        return kept

    kept = asyncio.run(main())
    again = Journal.open(tmp_path / "j.db")
    assert lists(again) == kept
    again.close()
