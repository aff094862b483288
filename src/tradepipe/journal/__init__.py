"""The journal: one SQLite file holding every signal, delivery, order, fill and position.

The only package that uses sqlite-utils (imported through tradepipe.journal.sqlite_utils_lean). The
daemon owns the single write connection, with group commit (tradepipe.journal.group_commit);
the CLI's reading commands open their own. WAL mode lets them read while the daemon writes, and
`synchronous=FULL` makes a committed signal survive `kill -9` and power loss (SPEC §3).

This module opens the file and owns its transactions and durability; each table's reads and
writes live in one module (schema, signals, orders, positions, events, paper_books; rows: how a
value is spelled), as functions taking the Journal, which `Journal` names as its methods.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from tradepipe.errors import JournalError
from tradepipe.journal import equity as _equity
from tradepipe.journal import events as _events
from tradepipe.journal import notifications as _notifications
from tradepipe.journal import orders as _orders
from tradepipe.journal import paper_books as _paper_books
from tradepipe.journal import positions as _positions
from tradepipe.journal import risk as _risk
from tradepipe.journal import schedules as _schedules
from tradepipe.journal import signals as _signals
from tradepipe.journal import trading_states as _trading_states
from tradepipe.journal.group_commit import GroupCommit
from tradepipe.journal.positions import apply_fill
from tradepipe.journal.rows import DeliveryRow, OrderRow, dumps, to_text
from tradepipe.journal.schema import migrations
from tradepipe.journal.sqlite_utils_lean import Database

__all__ = [
    "STORAGE_ERRORS",
    "DeliveryRow",
    "Journal",
    "OrderRow",
    "apply_fill",
    "dumps",
    "migrations",
    "to_text",
]

# What a journal write can raise: SQLite's own errors (this package is the only one that
# imports sqlite3) and the journal's.
STORAGE_ERRORS = (sqlite3.Error, JournalError)
T = TypeVar("T")


def _create_private(path: Path) -> None:
    """Create the journal file empty with mode 0600 (an empty file is an empty SQLite
    database): SQLite would create it 0644, and gives its -wal and -shm the database file's
    mode. An existing file keeps its mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # it exists; or SQLite's own open reports why it cannot be created
        return
    os.close(fd)


# RETURNING (3.35) answers a write with its row instead of a read back.
SQLITE_MINIMUM = (3, 35, 0)


def require_sqlite(version: str) -> None:
    """Refuse an SQLite library older than SQLITE_MINIMUM, naming both versions."""
    found = tuple(int(part) for part in version.split(".")[:3])
    if found < SQLITE_MINIMUM:
        need = ".".join(map(str, SQLITE_MINIMUM))
        raise JournalError(
            f"SQLite {version} is too old: the journal needs SQLite {need} or newer "
            "(Python's sqlite3 module links the system library; use a Python built with a "
            "newer one)"
        )


class Journal:
    """A tradepipe journal file. Not thread-safe: one Journal per thread or event loop."""

    def __init__(self, path: Path, db: Database) -> None:
        self.path = path
        self.db = db
        self.conn: sqlite3.Connection = db.conn
        self.group: GroupCommit | None = None
        # Counts this process's writes of `orders` rows (insert_order, update_order): a row a
        # caller holds is still the journal's while the count has not moved.
        self.orders_written = 0
        # The paper books this process keeps in memory as written (paper_books.py).
        self.paper_memo: dict[str, Any] = {}
        self.paper_written: _paper_books.Written | None = None  # watch_paper_rows
        # The journaled positions as written, with the `rollbacks` they were read at (positions.py).
        self.positions_memo: tuple[int, dict[tuple[str, str], Any]] | None = None
        self.live_orders_memo: tuple[int, dict[int, OrderRow]] | None = None  # orders.py
        self._rollbacks = 0  # transactions rolled back without group commit (and before it)

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Journal:
        path = Path(path)
        require_sqlite(sqlite3.sqlite_version)
        if not create and not path.exists():
            raise JournalError(
                f"no journal at {path}: start `tradepipe serve` once, or check [journal].path"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if str(path) != ":memory:":
                _create_private(path)
            conn = sqlite3.connect(str(path), timeout=10, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            db = Database(conn, execute_plugins=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit has reached the disk before we acknowledge anything built on it.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            migrations.apply(db)
        except sqlite3.DatabaseError as e:
            raise JournalError(f"cannot open journal {path}: {e}") from e
        return cls(path, db)

    def close(self) -> None:
        self.ungroup()
        self.conn.close()

    def group_commits(self) -> GroupCommit:
        """From now on, writes on the running event loop share one commit per turn of the loop
        (tradepipe.journal.group_commit); `durable()` is the barrier before anything leaves the
        process.
        Without this (the CLI's own runs), every transaction commits at its end."""
        if self.group is None:
            # Units keep their savepoints until the commit (group_commit.py): the page images
            # SQLite keeps for them (its statement journal) stay in memory, not a temp file,
            # which made every write of a long transaction about twice as slow.
            self.conn.execute("PRAGMA temp_store=MEMORY")
            self.group = GroupCommit(self.conn, asyncio.get_running_loop())
        return self.group

    def ungroup(self) -> None:
        """Commit what is pending and go back to one commit per transaction."""
        if self.group is not None:
            self.group.flush()
            self._rollbacks += self.group.rollbacks
            self.group = None

    def forget_memory(self) -> None:
        """Read what is kept in memory as written (positions, live orders, paper books) from
        the file again at its next use: where an engine starts, as a restarted process would."""
        self.positions_memo = self.live_orders_memo = None
        self.paper_memo.clear()

    @property
    def rollbacks(self) -> int:
        """How many times writes of this connection were undone so far (a failed transaction or
        unit): what is kept in memory as written is read again after one."""
        return self._rollbacks + (self.group.rollbacks if self.group is not None else 0)

    async def durable(self) -> None:
        """Return once every write made so far is on disk (at once without group commit)."""
        if self.group is not None:
            await self.group.durable()

    def committed(self) -> asyncio.Future[None]:
        """A future done once every write made so far is on disk (see GroupCommit)."""
        if self.group is not None:
            return self.group.committed()
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    @cached_property
    def instance(self) -> str:
        """A random id of this journal file, part of every client order id it creates; written
        once, so it is read once."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
        if row is not None:
            return str(row[0])
        value = secrets.token_hex(4)
        with self.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance', ?)", (value,)
            )
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
        return str(row[0])

    def transaction(self) -> AbstractContextManager[Any]:
        """An atomic group of writes; committed at its end, or with the loop's group commit."""
        if self.group is not None:
            return self.group.unit()
        return self._atomic()

    def execute_one(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """One write statement, atomic by itself: with group commit, inside the open
        transaction it takes no savepoint (GroupCommit.execute_one); else its own
        transaction."""
        if self.group is not None:
            return self.group.execute_one(sql, params)
        with self.transaction():
            return self.conn.execute(sql, params)

    def write_one(self, write: Callable[[], T], event: _events.Pending | None = None) -> T:
        """`write()`, exactly one write statement, and its audit event (`events.event`), as
        one atomic unit: with group commit, inside the open transaction it takes no savepoint
        (GroupCommit.write_one); else its own transaction."""
        if self.group is not None:
            return self.group.write_one(write, event)
        with self.transaction():
            result = write()
            if event is not None:
                _events.write_chain(self.conn, None, [event])
            return result

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        with self.db.atomic():
            try:
                yield
            except BaseException:
                self._rollbacks += 1
                raise

    # Each table's reads and writes: functions of the journal in their own module, named here as
    # methods (a function stored on the class binds like a method; no wrapper, no extra call).
    # Those taking **columns or **detail take the journal positional-only (`journal, /`), so a
    # keyword named `journal` (the engine's reconciliation detail) stays a keyword.

    # -- audit trail (events.py) ---------------------------------------------------------------
    record_operator_action = _events.record_operator_action
    record_reconciliation = _events.record_reconciliation
    events = _events.events

    # -- signals and deliveries (signals.py) ---------------------------------------------------
    record_signal = _signals.record_signal
    record_new_signal = _signals.record_new_signal
    find_signal_by_key = _signals.find_signal_by_key
    find_signal_by_body = _signals.find_signal_by_body
    find_seen_signal = _signals.find_seen_signal
    mark_signal_processed = _signals.mark_signal_processed
    signal = _signals.signal
    signals = _signals.signals
    unprocessed_signals = _signals.unprocessed_signals
    ensure_delivery = _signals.ensure_delivery
    deliveries_with_status = _signals.deliveries_with_status
    update_delivery = _signals.update_delivery
    delivery = _signals.delivery
    deliveries_for = _signals.deliveries_for

    # -- orders and fills (orders.py) ----------------------------------------------------------
    insert_order = _orders.insert_order
    insert_order_row = _orders.insert_order_row
    update_order = _orders.update_order
    order_by_client_id = _orders.order_by_client_id
    orders = _orders.orders
    working_orders = _orders.working_orders
    known_order_ids = _orders.known_order_ids
    submitting_orders = _orders.submitting_orders
    unknown_orders = _orders.unknown_orders
    order_by_id = _orders.order_by_id
    bracket_children = _orders.bracket_children
    siblings = _orders.siblings
    orders_for_deliveries = _orders.orders_for_deliveries
    record_fill = _orders.record_fill
    set_fill_fee = _orders.set_fill_fee
    feeless_fills = _orders.feeless_fills
    order_fills = _orders.order_fills
    fills = _orders.fills
    subscription_tickers = _orders.subscription_tickers

    # -- positions, moved by each fill (positions.py) ------------------------------------------
    position = _positions.position
    positions = _positions.positions

    # -- equity snapshots (equity.py) ----------------------------------------------------------
    record_equity = _equity.record_equity
    latest_equity = _equity.latest_equity
    day_start_equity = _equity.day_start_equity
    high_water_mark = _equity.high_water_mark
    equity_snapshots = _equity.equity_snapshots

    # -- trading states (trading_states.py) ----------------------------------------------------
    set_trading_state = _trading_states.set_trading_state
    end_trading_state = _trading_states.end_trading_state
    trading_states = _trading_states.trading_states

    # -- scheduled work (schedules.py) ---------------------------------------------------------
    add_schedule = _schedules.add_schedule
    finish_schedule = _schedules.finish_schedule
    schedule = _schedules.schedule
    pending_schedules = _schedules.pending_schedules
    schedules = _schedules.schedules
    # -- the notification outbox (notifications.py) --------------------------------------------
    add_notifications = _notifications.add_notifications
    pending_notifications = _notifications.pending_notifications
    mark_notifications_sent = _notifications.mark_notifications_sent
    retry_notifications = _notifications.retry_notifications
    give_up_notifications = _notifications.give_up_notifications
    notifications = _notifications.notifications
    notification_backlog = _notifications.notification_backlog
    last_heard = _notifications.last_heard
    last_told = _notifications.last_told
    # -- where the risk limits' counts start (risk.py) -----------------------------------------
    orders_sent_since = _risk.orders_sent_since
    entries_since = _risk.entries_since
    booked_fills = _risk.booked_fills
    last_fill_prices = _risk.last_fill_prices
    last_resumed_at = _risk.last_resumed_at

    # -- the paper broker's books (paper_books.py) ---------------------------------------------
    paper_cash = _paper_books.paper_cash
    paper_position = _paper_books.paper_position
    paper_positions = _paper_books.paper_positions
    paper_mark = _paper_books.paper_mark
    set_paper_mark = _paper_books.set_paper_mark
    paper_chain = _paper_books.paper_chain
    set_paper_chain = _paper_books.set_paper_chain
    paper_order = _paper_books.paper_order
    paper_working_order = _paper_books.paper_working_order
    paper_open_orders = _paper_books.paper_open_orders
    paper_fills = _paper_books.paper_fills
    paper_ticker_orders = _paper_books.paper_ticker_orders
    paper_children = _paper_books.paper_children
    paper_insert_order = _paper_books.paper_insert_order
    paper_insert_new_order = _paper_books.paper_insert_new_order
    paper_update_order = _paper_books.paper_update_order
    paper_apply_fill = _paper_books.paper_apply_fill
    forget_paper_books = _paper_books.forget_paper_books
    watch_paper_rows = _paper_books.watch_paper_rows
