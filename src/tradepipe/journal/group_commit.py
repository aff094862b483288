"""Group commit: many writers on one event loop share one fsync'd commit.

The daemon's journal writes (a signal, a delivery, an order, a fill …) each used to be their own
`synchronous=FULL` commit: about ten fsyncs per traded signal, each blocking the event loop that
every lane and every webhook request share. Here a write is an atomic *unit* (a savepoint) inside
one open transaction, committed at the next turn of the event loop once someone waits for it
(every unit written meanwhile goes with it), or within LATER seconds of the first unit nobody
waits for.

Durability is kept where it is promised, by a barrier: `await durable()` returns only once every
unit written before the call is committed to disk. Anything that leaves the process waits on it
first, which is the write-ahead rule:

- the webhook's 200 (an acknowledged signal is a committed signal, SPEC §3);
- every call that changes something at a broker (submit, replace, cancel): the order is on disk
  before the broker hears of it, so a restart can always ask about it;
- every answer of the local API.

A unit not yet committed when the process dies is lost together with everything after it, which
is exactly what a `kill -9` one turn earlier would have left: the crash drills cover that state.

If a commit fails (disk full, I/O error) the open transaction, and with it every unit since the
last commit, is gone. Writes after that could then build on rows that were never stored, so the
group commit *fails for good*: every later unit and barrier raises `JournalError`, and the
daemon stops so that systemd restarts it onto the last committed state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from tradepipe.errors import JournalError
from tradepipe.journal.events import Pending, write_chain

log = logging.getLogger(__name__)
T = TypeVar("T")

LATER = 0.005  # seconds a commit nobody waits for may wait for company
# Savepoints open in one transaction before they are folded: each write costs SQLite a look
# at every open one.
STACK = 16
_SAVEPOINT = {"unit": "SAVEPOINT unit", "base": "SAVEPOINT base"}
_ROLLBACK_TO = {"unit": "ROLLBACK TO unit", "base": "ROLLBACK TO base"}


class GroupCommit:
    """One connection's commits, grouped per turn of `loop`. Not thread-safe."""

    def __init__(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.loop = loop
        self.failure: JournalError | None = None
        self.commits = 0
        self._soon = False  # a commit is due at the next turn (someone waits for it)
        self._later: asyncio.TimerHandle | None = None  # a commit nobody waits for yet
        self._closed = False
        self._depth = 0
        self._owner: asyncio.Task[Any] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._on_failure: list[Callable[[JournalError], None]] = []
        # Audit events wait here for their transaction's commit (defer_event), and go in with
        # one statement (write_events), chained after `events_head`: the chain's head (id,
        # hash) as this connection last wrote it, kept across commits (None: unknown, after a
        # rollback). The insert checks it is still the table's last row (another connection
        # may have appended since) and reads the head only when it is not.
        self._events: list[Pending] = []
        self.events_head: tuple[int, str] | None = None
        self._mark = 0  # events queued before the open unit: what its rollback keeps
        self._rewrite: list[Pending] | None = None  # earlier units' events written inside it
        # How many times writes of this connection were undone (a unit rolled back, or the
        # whole open transaction): what is kept in memory as written is read again after one.
        self.rollbacks = 0
        self._open = 0  # savepoints open in this transaction
        self._base: int | None = None  # how many were open below `base`, if it is open
        self._name = "unit"  # the open unit's savepoint

    def on_failure(self, callback: Callable[[JournalError], None]) -> None:
        self._on_failure.append(callback)

    def unit(self) -> GroupCommit:
        """An atomic group of writes: all of them are committed together, or none (an
        exception inside rolls back this unit only). A unit inside another is part of it: its
        exception rolls back the outermost unit on its way out. Never await inside one: that
        would let other writers' units, and a commit, land inside it, so it fails the journal
        (as a crash would) rather than commit half a unit or call a half-written one durable.

        Use as `with group.unit():`. The group is its own context manager (units do not nest,
        so one depth counter is all the state): a plain object, because the journal enters
        tens of these per traded signal and a generator-based one costs several times more."""
        return self

    def __enter__(self) -> None:
        self._check()
        if self._depth:
            if asyncio.current_task(self.loop) is not self._owner:
                self._fail("a unit of writes was held open across an await (a bug)")
                self._check()
            self._depth += 1
            return
        self._schedule(urgent=False)
        # Outside a transaction, SAVEPOINT opens one (deferred, as BEGIN does): no BEGIN of its
        # own. Inside, the first unit's savepoint is `base`, the next ones' `unit` (constant
        # texts stay in sqlite3's prepared-statement cache); once STACK are open, releasing
        # `base` folds it and every later one into what is below (never the one that opened
        # the transaction: releasing that one would commit).
        if not self.conn.in_transaction:
            self._open, self._base = 0, None
            name = "unit"
        else:
            if self._base is not None and self._open >= STACK:
                # (gone already if a commit from outside took it: tests commit by hand)
                with contextlib.suppress(sqlite3.OperationalError):
                    self.conn.execute("RELEASE base")
                self._open, self._base = self._base, None
            name = "unit"
            if self._base is None:
                name, self._base = "base", self._open
        self.conn.execute(_SAVEPOINT[name])
        self._open += 1
        self._name = name
        self._mark, self._rewrite = len(self._events), None
        self._depth, self._owner = 1, asyncio.current_task(self.loop)

    def __exit__(self, kind: type[BaseException] | None, error: Any, trace: Any) -> None:
        if self._depth > 1:
            self._depth -= 1
            return
        # A unit that ends well is not released: its savepoint stays on the stack until the
        # commit (COMMIT releases them all) or the next fold, one statement fewer per unit.
        # A failed unit rolls back to its own savepoint: the newest of its name.
        try:
            if kind is not None:
                self.events_head = None
                self._roll_back_unit()
        finally:
            self._depth, self._owner = 0, None

    def execute_one(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """One write statement as a unit of its own (`write_one`)."""
        return self.write_one(lambda: self.conn.execute(sql, params))

    def write_one(self, write: Callable[[], T], event: Pending | None = None) -> T:
        """`write()`, which makes exactly one write statement (and nothing that can fail after
        it), and the audit event that records it, as a unit of their own. Inside an open
        transaction this needs no savepoint: SQLite undoes a failed statement by itself and
        leaves the transaction as it was, which is all a unit's rollback would do, and the
        event (made before the write, so nothing fails between the two) joins the waiting ones
        only once the write is in; if the error took the whole transaction instead (a full
        disk, an I/O error), the journal fails as after a failed unit. Inside a unit it is part
        of that unit; with no transaction open, it is a unit (whose savepoint opens the
        transaction, as BEGIN would)."""
        self._check()
        if self._depth or not self.conn.in_transaction:
            with self:
                result = write()
                if event is not None:
                    self._events.append(event)
                return result
        self._schedule(urgent=False)
        try:
            result = write()
        except sqlite3.Error:
            if not self.conn.in_transaction:
                self.events_head = None
                self.rollbacks += 1
                self._fail("SQLite rolled back the open transaction after an error")
            raise
        if event is not None:
            self._events.append(event)
        return result

    def _roll_back_unit(self) -> None:
        self.rollbacks += 1
        if not self.conn.in_transaction:  # SQLite rolled back the whole transaction
            self._fail("SQLite rolled back the open transaction after an error")
            return
        try:
            # Back to this unit's savepoint, which stays (empty) on the stack: releasing it
            # would commit when it is the one that opened the transaction.
            self.conn.execute(_ROLLBACK_TO[self._name])
            # Its events go with it; earlier units' events written inside it wait again.
            if self._rewrite is not None:
                self._events = self._rewrite
            else:
                del self._events[self._mark :]
            self._rewrite = None
        except sqlite3.Error as e:  # the unit's half must never reach the next commit
            self._fail(f"a failed unit could not be rolled back: {e}")
            self._roll_back_everything()

    def defer_event(self, event: Pending) -> None:
        """An audit event of a write just made in the open transaction: written with the
        transaction's other events just before its commit (one statement for them all)."""
        self._check()
        self._events.append(event)
        self._schedule(urgent=False)

    def write_events(self) -> tuple[int, str] | None:
        """Write the waiting events now (before the commit, or for a reader of the table on
        this connection); returns the chain's head as this connection last wrote it. A
        failure leaves them waiting."""
        self._check()
        if not self._events:
            return self.events_head
        events = self._events
        head = write_chain(self.conn, self.events_head, events)
        if self._depth and self._rewrite is None:  # the unit's rollback must not take these
            self._rewrite = events[: self._mark]
        self._events, self._mark = [], 0
        self.events_head = head
        return head

    async def durable(self) -> None:
        """Return once everything written so far is committed; raises JournalError if that
        commit failed."""
        await self.committed()

    def committed(self) -> asyncio.Future[None]:
        """A future done once everything written so far is committed (its exception a
        JournalError if that commit failed). Cancelling it cancels nothing else."""
        self._check()
        waiter = self.loop.create_future()
        if not self.conn.in_transaction:
            waiter.set_result(None)
            return waiter
        self._waiters.append(waiter)
        self._schedule(urgent=True)
        return waiter

    def flush(self) -> None:
        """Commit now and stop grouping (at shutdown); whoever still waits is answered."""
        if self._closed:
            return
        self._closed = True
        if self._depth:
            self._fail("the journal was closed inside a unit of writes")
        self._commit_and_answer()

    def _schedule(self, *, urgent: bool) -> None:
        """Someone waits: commit at the next turn. Nobody waits yet (a delivery's outcome, a
        fill heard after the answer): commit within LATER seconds, unless a barrier comes
        first and takes these writes along — one fsync fewer per signal when signals come one
        at a time. Nobody outside was told of them, so a crash meanwhile is one turn earlier's
        crash."""
        if self._closed or self._soon:
            return
        if urgent:
            self._soon = True
            self.loop.call_soon(self._flush)
            if self._later is not None:
                self._later.cancel()
                self._later = None
        elif self._later is None:
            self._later = self.loop.call_later(LATER, self._flush)

    def _flush(self) -> None:
        self._soon = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if self._closed:  # flush() did the last commit; the connection may be closed now
            return
        if self._depth:  # only an await inside a unit gets here: never commit half of it
            self._fail("a unit of writes was held open across an await (a bug)")
        self._commit_and_answer()

    def _commit_and_answer(self) -> None:
        waiters, self._waiters = self._waiters, []
        if self.failure is None and self.conn.in_transaction:
            self._commit()
        for waiter in waiters:
            if waiter.done():  # its caller was cancelled
                continue
            if self.failure is not None:
                waiter.set_exception(JournalError(str(self.failure)))
            else:
                waiter.set_result(None)

    def _commit(self) -> None:
        try:
            if self._events:
                self.write_events()
            self.conn.commit()
        except sqlite3.Error as e:
            self._fail(f"the commit failed: {e}")
            self._roll_back_everything()
        else:
            self.commits += 1
        finally:
            self._open, self._base = 0, None

    def _roll_back_everything(self) -> None:
        self.events_head = None
        self._events, self._rewrite = [], None
        self._open, self._base = 0, None
        self.rollbacks += 1
        try:
            self.conn.rollback()
        except sqlite3.Error:
            log.exception("journal: the rollback after a failure failed too")

    def _fail(self, why: str) -> None:
        if self.failure is not None:
            return
        self.failure = JournalError(
            f"the journal lost its uncommitted writes ({why}); nothing more is accepted"
            " until tradepipe restarts on the last committed state"
        )
        log.critical("%s", self.failure)
        if self._depth:  # never commit what the open unit wrote so far
            self._roll_back_everything()
        for callback in self._on_failure:
            try:
                callback(self.failure)
            except Exception:  # the waiters must still be answered
                log.exception("journal: a failure callback failed")

    def _check(self) -> None:
        if self.failure is not None:
            raise JournalError(str(self.failure))
