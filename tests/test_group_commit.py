"""Group commit (tradepipe.journal.group_commit): writers on one loop share a commit, and
nothing leaves the process before what led to it is on disk.

"On disk" is checked the only way that means anything: a second connection to the journal file
sees it (it sees committed rows only).
"""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.helpers import on_disk, write_config
from tests.test_engine import Harness, run
from tests.test_server import post, scenario
from tradepipe.brokers.paper.broker import PaperBroker
from tradepipe.core.audit import verify_chain
from tradepipe.core.model import OrderRequest, OrderState
from tradepipe.daemon.serve import Actions
from tradepipe.errors import JournalError
from tradepipe.journal import Journal
from tradepipe.journal.group_commit import STACK

NOW = "2026-11-21T12:00:00+00:00"


def operator_events(path: Path) -> list[str]:
    return [r[0] for r in on_disk(path, "SELECT subject FROM events WHERE kind = 'operator'")]


def journal_at(tmp_path: Path) -> Journal:
    return Journal.open(tmp_path / "journal.db")


def test_writes_in_one_turn_share_one_commit_and_the_barrier_waits_for_it(tmp_path):
    async def main():
        journal = journal_at(tmp_path)
        group = journal.group_commits()
        before = group.commits
        for n in range(5):
            journal.record_operator_action("note", f"write {n}", NOW)
        assert operator_events(journal.path) == []  # written, not yet committed
        await journal.durable()
        assert operator_events(journal.path) == [f"write {n}" for n in range(5)]
        assert group.commits - before == 1
        await journal.durable()  # nothing pending: no commit
        assert group.commits - before == 1
        journal.close()

    asyncio.run(main())


def test_a_write_nobody_waits_for_is_committed_soon_or_rides_with_the_next_barrier(tmp_path):
    async def main():
        journal = journal_at(tmp_path)
        group = journal.group_commits()
        before = group.commits
        journal.record_operator_action("note", "unwaited", NOW)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        journal.record_operator_action("note", "with a barrier", NOW)
        await journal.durable()
        assert group.commits - before == 1  # the barrier took the earlier write along
        journal.record_operator_action("note", "alone", NOW)
        await asyncio.sleep(0.2)  # no barrier at all: committed within LATER seconds anyway
        assert operator_events(journal.path) == ["unwaited", "with a barrier", "alone"]
        assert group.commits - before == 2
        journal.close()

    asyncio.run(main())


def test_concurrent_writers_each_wait_for_their_own_write_on_disk(tmp_path):
    async def main():
        journal = journal_at(tmp_path)
        group = journal.group_commits()
        before = group.commits

        async def writer(n: int) -> list[str]:
            journal.record_operator_action("note", f"writer {n}", NOW)
            await journal.durable()
            return operator_events(journal.path)

        seen = await asyncio.gather(*(writer(n) for n in range(20)))
        for n, events in enumerate(seen):
            assert f"writer {n}" in events
        assert group.commits - before == 1
        journal.close()

    asyncio.run(main())


def test_a_failed_unit_is_rolled_back_alone(tmp_path):
    async def main():
        journal = journal_at(tmp_path)
        journal.group_commits()
        journal.record_operator_action("note", "kept before", NOW)
        with pytest.raises(RuntimeError), journal.transaction():
            journal.record_operator_action("note", "lost", NOW)  # a unit inside the failing one
            raise RuntimeError("boom")
        journal.record_operator_action("note", "kept after", NOW)
        await journal.durable()
        assert operator_events(journal.path) == ["kept before", "kept after"]
        journal.close()

    asyncio.run(main())


def test_a_failed_first_unit_of_a_transaction_commits_nothing_and_the_next_units_hold(tmp_path):
    """A unit's savepoint opens the transaction when none is open, and units that end well are
    not released until the commit: rolling back the first one must neither commit on its own
    nor lose the units after it."""

    async def main():
        journal = journal_at(tmp_path)
        group = journal.group_commits()
        before = group.commits
        with pytest.raises(RuntimeError), journal.transaction():
            journal.record_operator_action("note", "lost first", NOW)
            raise RuntimeError("boom")
        assert group.commits == before and operator_events(journal.path) == []
        journal.record_operator_action("note", "kept", NOW)
        with pytest.raises(RuntimeError), journal.transaction():
            journal.record_operator_action("note", "lost later", NOW)
            raise RuntimeError("boom")
        journal.record_operator_action("note", "kept too", NOW)
        await journal.durable()
        assert operator_events(journal.path) == ["kept", "kept too"]
        assert group.commits - before == 1
        assert verify_chain(journal.events()).ok
        journal.close()

    asyncio.run(main())


def test_many_units_in_one_transaction_each_roll_back_alone_across_the_folds(tmp_path):
    """Units keep their savepoints until the commit, folded every STACK of them: a unit that
    fails rolls back alone wherever it falls (the first, around a fold, after one), and every
    other one of the same commit is kept."""
    failing = {0, 1, STACK - 1, STACK, STACK + 1, 2 * STACK, 3 * STACK + 5}

    async def main():
        journal = journal_at(tmp_path)
        group = journal.group_commits()
        before = group.commits
        for n in range(4 * STACK):
            if n in failing:
                with pytest.raises(RuntimeError), journal.transaction():
                    journal.record_operator_action("note", f"lost {n}", NOW)
                    raise RuntimeError("boom")
            else:
                journal.record_operator_action("note", f"write {n}", NOW)
        await journal.durable()
        kept = [f"write {n}" for n in range(4 * STACK) if n not in failing]
        assert operator_events(journal.path) == kept
        assert group.commits - before == 1
        assert verify_chain(journal.events()).ok
        journal.close()

    asyncio.run(main())


def test_a_single_statement_write_that_fails_inside_the_transaction_undoes_only_itself(tmp_path):
    """execute_one takes no savepoint inside an open transaction: SQLite undoes the failed
    statement alone, the units before it stay, and the group goes on."""

    async def main():
        journal = journal_at(tmp_path)
        group = journal.group_commits()
        journal.record_operator_action("note", "kept before", NOW)
        assert journal.conn.in_transaction
        insert = "INSERT INTO meta (key, value) VALUES (?, ?)"
        journal.execute_one(insert, ("one", "1"))
        with pytest.raises(sqlite3.IntegrityError):
            journal.execute_one(insert, ("one", "again"))
        assert group.failure is None and journal.conn.in_transaction
        journal.record_operator_action("note", "kept after", NOW)
        await journal.durable()
        assert operator_events(journal.path) == ["kept before", "kept after"]
        assert on_disk(journal.path, "SELECT value FROM meta WHERE key = 'one'") == [("1",)]
        assert verify_chain(journal.events()).ok
        journal.close()

    asyncio.run(main())


def test_a_unit_held_open_across_an_await_fails_the_journal_never_commits_half(tmp_path):
    """Awaiting inside a unit is a bug: other writers' units and a commit could land inside
    it. The journal fails as a crash would: nothing of that turn is committed, the writer
    that stepped in is refused, and no barrier says "on disk"."""

    async def main():
        journal = journal_at(tmp_path)
        journal.record_operator_action("note", "committed earlier", NOW)
        journal.group_commits()

        async def bystander() -> None:
            journal.record_operator_action("note", "bystander", NOW)
            await journal.durable()

        refused = pytest.raises(JournalError, match="held open across an await")
        with refused, journal.transaction():
            journal.record_operator_action("note", "first half", NOW)
            other = asyncio.create_task(bystander())
            for _ in range(5):
                await asyncio.sleep(0)
            journal.record_operator_action("note", "second half", NOW)
        with pytest.raises(JournalError, match="held open across an await"):
            await other
        assert operator_events(journal.path) == ["committed earlier"]
        journal.close()

    asyncio.run(main())


def test_closing_the_journal_answers_whoever_waits_for_the_commit(tmp_path):
    async def main():
        journal = journal_at(tmp_path)
        journal.group_commits()

        async def writer() -> str:
            journal.record_operator_action("note", "last words", NOW)
            await journal.durable()
            return "answered"

        task = asyncio.create_task(writer())
        await asyncio.sleep(0)  # the writer waits for the commit that close() now makes
        journal.close()
        assert await asyncio.wait_for(task, 5) == "answered"
        for _ in range(3):  # the commit scheduled before close() finds nothing to do
            await asyncio.sleep(0)
        assert operator_events(journal.path) == ["last words"]

    asyncio.run(main())


def fail_the_next_commit(journal: Journal) -> None:
    """A deferred foreign key is only checked at COMMIT: the writes succeed, the commit fails,
    as it would on a full disk."""
    journal.conn.executescript(
        """
        CREATE TEMP TABLE doomed_parent (id INTEGER PRIMARY KEY);
        CREATE TEMP TABLE doomed (
            parent INTEGER REFERENCES doomed_parent(id) DEFERRABLE INITIALLY DEFERRED
        );
        CREATE TEMP TRIGGER doom AFTER INSERT ON main.signals
            BEGIN INSERT INTO doomed (parent) VALUES (-1); END;
        """
    )


def test_a_failed_commit_fails_every_waiter_and_refuses_all_later_writes(tmp_path):
    async def main():
        journal = journal_at(tmp_path)
        journal.record_operator_action("note", "committed earlier", NOW)
        group = journal.group_commits()
        failures: list[JournalError] = []
        group.on_failure(failures.append)
        fail_the_next_commit(journal)

        async def writer(n: int) -> None:
            journal.record_operator_action("note", f"writer {n}", NOW)
            await journal.durable()

        journal.record_signal(
            strategy="trend", received_at=NOW, body="{}", status="rejected", http_status=400
        )
        results = await asyncio.gather(*(writer(n) for n in range(3)), return_exceptions=True)
        assert all(isinstance(r, JournalError) for r in results), results
        assert "lost its uncommitted writes" in str(results[0])
        assert "FOREIGN KEY constraint failed" in str(results[0])
        assert len(failures) == 1
        # Nothing of the failed batch is on disk; what was committed before still is.
        assert operator_events(journal.path) == ["committed earlier"]
        assert on_disk(journal.path, "SELECT count(*) FROM signals") == [(0,)]
        # Later writes could build on rows that were never stored: refused until a restart.
        with pytest.raises(JournalError, match="restarts"):
            journal.record_operator_action("note", "after", NOW)
        with pytest.raises(JournalError):
            await journal.durable()
        journal.close()
        reopened = journal_at(tmp_path)
        assert [e["subject"] for e in reopened.events()] == ["committed earlier"]
        reopened.close()

    asyncio.run(main())


def test_the_webhook_answers_only_for_a_committed_signal(tmp_path):
    """The signal's commit fails after its INSERT succeeded: the sender must hear 503 (and
    retry), never a 200 for a signal the journal does not hold; the engine gets nothing."""

    async def test(session, journal, engine):
        fail_the_next_commit(journal)
        status, answer = await post(
            session, {"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 190}
        )
        assert status == 503 and answer["code"] == "journal-unavailable", answer
        assert "FOREIGN KEY constraint failed" in answer["message"]
        await engine.drain()
        assert on_disk(journal.path, "SELECT count(*) FROM signals") == [(0,)]
        assert on_disk(journal.path, "SELECT count(*) FROM deliveries") == [(0,)]

    scenario(write_config(tmp_path), test)


class DiskWitness(PaperBroker):
    """The real paper broker, which first checks, at every call that changes an order, that
    the journal on disk holds what the journal in memory says of the ticker's orders and fills
    (only its own lane writes those), and that a new order is on disk as 'submitting': the
    write-ahead rule a restart relies on."""

    path: Path
    calls: list[tuple[str, str, str | None, bool]]

    def _witness(self, call: str, client_order_id: str, ticker: str | None) -> None:
        query = (
            "SELECT o.client_order_id, o.status, o.filled_quantity, count(f.id) FROM orders o"
            " LEFT JOIN fills f ON f.order_id = o.id WHERE o.ticker = ? GROUP BY o.id ORDER BY o.id"
        )
        memory = [tuple(r) for r in self._journal.conn.execute(query, (ticker,))]
        rows = on_disk(
            self.path, "SELECT status FROM orders WHERE client_order_id = ?", client_order_id
        )
        pending = memory != on_disk(self.path, query, ticker)
        self.calls.append((call, client_order_id, rows[0][0] if rows else None, pending))

    async def submit_bracket(self, entry, children) -> list[OrderState]:
        for request in (entry, *children):
            self._witness("submit", request.client_order_id, request.ticker)
        return await super().submit_bracket(entry, children)

    async def replace(self, client_order_id: str, request: OrderRequest) -> OrderState:
        self._witness("replace", request.client_order_id, request.ticker)
        return await super().replace(client_order_id, request)

    async def cancel(self, client_order_id: str, *, ticker: str | None = None):
        self._witness("cancel", client_order_id, ticker)
        return await super().cancel(client_order_id, ticker=ticker)


class WitnessHarness(Harness):
    def new_engine(self):
        engine = super().new_engine()
        broker = DiskWitness(
            "paper", self.journal, cash=D(100000), clock=self.clock, native_brackets=False
        )
        broker.path, broker.calls = self.journal.path, []
        engine.brokers = {"paper": broker}
        return engine


def test_every_order_is_on_disk_before_the_broker_hears_of_it(tmp_path):
    """Entries, a reversal into a short with emulated bracket legs (released after its fill), a
    breakeven replace, the one-cancels-other and a flatten: at every call the ticker's orders
    and fills on disk were those in memory, and every order sent was on disk as 'submitting'."""

    async def test(h: WitnessHarness):
        bracket = {"takeProfit": {"limitPrice": 90}, "stopLoss": {"stopPrice": 110}}
        await h.send({"ticker": "AAPL", "action": "buy", "quantity": 5, "signalPrice": 100})
        await h.send({"ticker": "MSFT", "action": "buy", "quantity": 5, "signalPrice": 100})
        await h.send(
            {"ticker": "MSFT", "action": "sell", "quantity": 5, "signalPrice": 101, **bracket}
        )
        await h.send({"ticker": "MSFT", "action": "breakeven", "signalPrice": 95})
        await Actions(h.config, h.engine).paper_quote("paper", "MSFT", D(89))
        await h.engine.flatten("paper")
        await h.engine.drain()
        calls = h.engine.brokers["paper"].calls
        roles = {o["client_order_id"]: o["role"] for o in h.journal.orders()}
        sent = {roles[cid] for call, cid, _, _ in calls if call != "cancel"}
        assert sent >= {"entry", "exit", "take_profit", "stop_loss"}, calls
        assert {call for call, *_ in calls} == {"submit", "replace", "cancel"}, calls
        assert [c for c in calls if c[3]] == []  # nothing pending at any broker call
        assert [c for c in calls if c[0] != "cancel" and c[2] != "submitting"] == []

    run(write_config(tmp_path), test, WitnessHarness)


def test_audit_events_that_cannot_be_written_at_the_commit_fail_it_and_take_their_rows_back(
    tmp_path,
):
    """A transaction's audit events wait for its commit (journal/events.py): if they cannot be
    written then, the change they record is not committed without them (no silent gap in the
    trail), the waiter hears why, and the journal refuses more, as after any failed commit."""

    async def main():
        journal = journal_at(tmp_path)
        journal.group_commits()
        journal.record_signal(
            strategy="trend", received_at=NOW, body="{}", status="accepted", http_status=200
        )
        await journal.durable()
        # The disk refuses the delivery's event only, and only when the commit writes it.
        journal.conn.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON events WHEN NEW.kind = 'delivery'"
            " BEGIN SELECT RAISE(ABORT, 'events refused'); END"
        )
        journal.ensure_delivery(
            signal_id=1,
            subscription="trend-paper",
            account="paper",
            ticker="AAPL",
            status="queued",
            created_at=NOW,
            updated_at=NOW,
        )  # its row written, its event waiting
        with pytest.raises(JournalError, match="events refused"):
            await journal.durable()
        assert on_disk(journal.path, "SELECT count(*) FROM deliveries") == [(0,)]
        assert on_disk(journal.path, "SELECT kind FROM events") == [("signal",)]
        with pytest.raises(JournalError, match="restarts"):
            journal.record_operator_action("note", "after", NOW)
        journal.close()

    asyncio.run(main())
