"""Group commit: many writers on one event loop share one fsync'd commit.

The daemon's journal writes (a signal, a delivery, an order, a fill …) each used to be their own
`synchronous=FULL` commit: about ten fsyncs per traded signal, each blocking the event loop that
every lane and every webhook request share. Here a write is an atomic *unit* (a savepoint) inside
one open transaction, and the transaction is committed once per turn of the event loop, after
every unit written during that turn.

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
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tradepipe.errors import JournalError

log = logging.getLogger(__name__)


class GroupCommit:
    """One connection's commits, grouped per turn of `loop`. Not thread-safe."""

    def __init__(self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.loop = loop
        self.failure: JournalError | None = None
        self.commits = 0
        self._scheduled = False
        self._depth = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._on_failure: list[Callable[[JournalError], None]] = []

    def on_failure(self, callback: Callable[[JournalError], None]) -> None:
        self._on_failure.append(callback)

    @contextmanager
    def unit(self) -> Iterator[None]:
        """An atomic group of writes: all of them are committed together, or none (an
        exception inside rolls back this unit only). Never await inside one. A unit inside
        another is part of it: its exception rolls back the outermost unit on its way out."""
        self._check()
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
        self._schedule()
        # One name: units do not nest (an inner one is part of its outer one), and a constant
        # text keeps the three statements in sqlite3's prepared-statement cache.
        self.conn.execute("SAVEPOINT unit")
        self._depth += 1
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK TO unit")
                self.conn.execute("RELEASE unit")
            else:  # SQLite rolled the whole transaction back: other units went with it
                self._fail("SQLite rolled back the open transaction after an error")
            raise
        else:
            self.conn.execute("RELEASE unit")
        finally:
            self._depth -= 1

    async def durable(self) -> None:
        """Return once everything written so far is committed; raises JournalError if that
        commit failed."""
        self._check()
        if not self._scheduled and not self.conn.in_transaction:
            return
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        self._schedule()
        await waiter

    def flush(self) -> None:
        """Commit now (at shutdown, or outside the loop). Units must not be open."""
        if self.failure is None and self.conn.in_transaction:
            self._commit()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._depth:  # an await inside a unit: a bug, but never commit half of it
            log.error("journal: a unit was open at the group commit; commit deferred")
            self._schedule()
            return
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
            self.conn.commit()
        except sqlite3.Error as e:
            self._fail(f"the commit failed: {e}")
            try:
                self.conn.rollback()
            except sqlite3.Error:
                log.exception("journal: rollback after the failed commit failed too")
        else:
            self.commits += 1

    def _fail(self, why: str) -> None:
        if self.failure is not None:
            return
        self.failure = JournalError(
            f"the journal lost its uncommitted writes ({why}); nothing more is accepted"
            " until tradepipe restarts on the last committed state"
        )
        log.critical("%s", self.failure)
        for callback in self._on_failure:
            callback(self.failure)

    def _check(self) -> None:
        if self.failure is not None:
            raise JournalError(str(self.failure))
