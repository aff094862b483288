"""The journal: one SQLite file holding every signal, delivery, order, fill and position.

The only module that uses sqlite-utils (imported through tradepipe.journal.sqlite_utils_lean). The
daemon owns the single write connection, with group commit (tradepipe.journal.group_commit);
the CLI's
reading commands open their own. WAL mode lets them read while the daemon writes, and
`synchronous=FULL` makes a committed signal survive `kill -9` and power loss (SPEC §3).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from tradepipe.core.audit import GENESIS, event_hash
from tradepipe.core.reconcile import WORKING
from tradepipe.errors import JournalError
from tradepipe.journal.group_commit import GroupCommit
from tradepipe.journal.sqlite_utils_lean import Database, Migrations

migrations = Migrations("tradepipe")


@migrations(name="0001_initial")
def _initial(db: Database) -> None:
    # Decimals are TEXT so that a price or a quantity reads back exactly as it was written.
    db.executescript(
        """
        CREATE TABLE signals (
            id INTEGER PRIMARY KEY,
            strategy TEXT,
            received_at TEXT NOT NULL,
            source TEXT,
            body TEXT NOT NULL,
            payload TEXT,
            ticker TEXT,
            action TEXT,
            status TEXT NOT NULL,
            http_status INTEGER NOT NULL,
            error TEXT,
            errors TEXT NOT NULL DEFAULT '[]',
            warnings TEXT NOT NULL DEFAULT '[]',
            dedupe_key TEXT,
            body_hash TEXT,
            duplicate_of INTEGER REFERENCES signals(id),
            processed_at TEXT
        ) STRICT;
        CREATE INDEX signals_dedupe ON signals(strategy, dedupe_key) WHERE dedupe_key IS NOT NULL;
        CREATE INDEX signals_body_hash ON signals(strategy, body_hash);
        CREATE INDEX signals_status ON signals(status);

        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            signal_id INTEGER NOT NULL REFERENCES signals(id),
            subscription TEXT NOT NULL,
            account TEXT NOT NULL,
            ticker TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            plan TEXT,
            provenance TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (signal_id, subscription)
        ) STRICT;
        CREATE INDEX deliveries_status ON deliveries(status);

        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            client_order_id TEXT NOT NULL UNIQUE,
            delivery_id INTEGER REFERENCES deliveries(id),
            signal_id INTEGER REFERENCES signals(id),
            subscription TEXT,
            account TEXT NOT NULL,
            ticker TEXT NOT NULL,
            side TEXT NOT NULL,
            quantity TEXT NOT NULL,
            filled_quantity TEXT NOT NULL DEFAULT '0',
            average_fill_price TEXT,
            order_type TEXT NOT NULL,
            limit_price TEXT,
            stop_price TEXT,
            trail_amount TEXT,
            trail_percent TEXT,
            time_in_force TEXT NOT NULL,
            role TEXT NOT NULL,
            parent_id INTEGER REFERENCES orders(id),
            status TEXT NOT NULL,
            broker_order_id TEXT,
            broker_message TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        ) STRICT;
        CREATE INDEX orders_account_ticker ON orders(account, ticker);
        CREATE INDEX orders_status ON orders(status);

        CREATE TABLE fills (
            id INTEGER PRIMARY KEY,
            fill_id TEXT NOT NULL UNIQUE,
            order_id INTEGER NOT NULL REFERENCES orders(id),
            account TEXT NOT NULL,
            ticker TEXT NOT NULL,
            side TEXT NOT NULL,
            quantity TEXT NOT NULL,
            price TEXT NOT NULL,
            filled_at TEXT NOT NULL
        ) STRICT;

        CREATE TABLE positions (
            account TEXT NOT NULL,
            ticker TEXT NOT NULL,
            quantity TEXT NOT NULL,
            average_price TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (account, ticker)
        ) STRICT;

        -- The paper broker's own books: what a broker would hold on its side of the wire.
        CREATE TABLE paper_accounts (
            account TEXT PRIMARY KEY,
            cash TEXT NOT NULL
        ) STRICT;
        CREATE TABLE paper_positions (
            account TEXT NOT NULL,
            ticker TEXT NOT NULL,
            quantity TEXT NOT NULL,
            average_price TEXT,
            PRIMARY KEY (account, ticker)
        ) STRICT;
        CREATE TABLE paper_marks (
            account TEXT NOT NULL,
            ticker TEXT NOT NULL,
            price TEXT NOT NULL,
            marked_at TEXT NOT NULL,
            PRIMARY KEY (account, ticker)
        ) STRICT;
        CREATE TABLE paper_orders (
            account TEXT NOT NULL,
            client_order_id TEXT NOT NULL,
            broker_order_id TEXT NOT NULL UNIQUE,
            request TEXT NOT NULL,
            status TEXT NOT NULL,
            filled_quantity TEXT NOT NULL DEFAULT '0',
            average_fill_price TEXT,
            message TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (account, client_order_id)
        ) STRICT;
        CREATE TABLE paper_fills (
            fill_id TEXT PRIMARY KEY,
            account TEXT NOT NULL,
            client_order_id TEXT NOT NULL,
            ticker TEXT NOT NULL,
            side TEXT NOT NULL,
            quantity TEXT NOT NULL,
            price TEXT NOT NULL,
            filled_at TEXT NOT NULL
        ) STRICT;
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) STRICT;
        """
    )


@migrations(name="0002_paper_brackets")
def _paper_brackets(db: Database) -> None:
    # A bracket child is held until its parent fills; then siblings cancel each other (OCO).
    db.execute("ALTER TABLE paper_orders ADD COLUMN parent TEXT")
    db.execute("CREATE INDEX paper_orders_parent ON paper_orders(account, parent)")


@migrations(name="0003_paper_live_orders")
def _paper_live_orders(db: Database) -> None:
    # Every signal asks for one ticker's live orders: without this index that walked every
    # paper order ever placed, so each signal cost more than the one before.
    db.execute(
        "CREATE INDEX paper_orders_live ON paper_orders(account, json_extract(request, '$.ticker'))"
        " WHERE status IN ('accepted', 'partially_filled', 'held')"
    )


@migrations(name="0004_paper_trailing")
def _paper_trailing(db: Database) -> None:
    # A trailing stop remembers the best mark since it went live: its stop trails that mark.
    db.execute("ALTER TABLE paper_orders ADD COLUMN trail_extreme TEXT")


@migrations(name="0005_order_children")
def _order_children(db: Database) -> None:
    # Emulated brackets look a child's siblings up by their parent.
    db.execute("CREATE INDEX orders_parent ON orders(parent_id) WHERE parent_id IS NOT NULL")


@migrations(name="0006_audit_events")
def _audit_events(db: Database) -> None:
    # Append-only and hash-chained (tradepipe.core.audit): what happened, in order, provably
    # unedited.
    db.executescript(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        ) STRICT;
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: UPDATE refused'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only: DELETE refused'); END;
        """
    )


@migrations(name="0007_order_replaces")
def _order_replaces(db: Database) -> None:
    # A breakeven stop names the order it takes the place of: a restart must finish that
    # replacement, never place the new stop beside the old one.
    db.execute("ALTER TABLE orders ADD COLUMN replaces TEXT")


@migrations(name="0008_order_extended_hours")
def _order_extended_hours(db: Database) -> None:
    # An emulated bracket child is sent from its journal row: it must keep the entry's session.
    db.execute("ALTER TABLE orders ADD COLUMN extended_hours INTEGER NOT NULL DEFAULT 0")


@migrations(name="0009_fills_by_order")
def _fills_by_order(db: Database) -> None:
    # Every broker answer that reports a fill is checked against the order's journaled fills.
    db.execute("CREATE INDEX fills_order ON fills(order_id)")


@migrations(name="0010_lookups_that_grew")
def _lookups_that_grew(db: Database) -> None:
    # Both were found by profiling a 2,000-signal burst: each signal cost more than the one
    # before. Every paper order answer reads its fills (a scan of every paper fill), and every
    # delivery asks for the ticker's orders of unknown fate (a walk over all its orders).
    db.execute("CREATE INDEX paper_fills_order ON paper_fills(account, client_order_id)")
    db.execute("DROP INDEX orders_account_ticker")
    db.execute("CREATE INDEX orders_account_ticker ON orders(account, ticker, status)")


_ORDER_DETAIL = (
    "status",
    "account",
    "ticker",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "stop_price",
    "trail_amount",
    "trail_percent",
    "time_in_force",
    "role",
    "signal_id",
    "subscription",
    "replaces",
)

# Orders that are not yet done with: held by us, on their way, working, or of unknown fate.
_LIVE_ORDER = "'held', 'submitting', 'submitted', 'accepted', 'partially_filled', 'unknown'"


def to_text(value: Any) -> str | None:
    """The journal's spelling of a value: Decimals exactly, datetimes as ISO-8601."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _value(value: Any) -> Any:
    """A parameter as the journal stores it (Decimals and datetimes as text)."""
    return to_text(value) if isinstance(value, Decimal | datetime) else value


# The statements _insert and _update build, by (table, columns…): the same few shapes recur
# for every signal, and building their text again each time was a measurable share of a trade.
# Table and column names come from this module's own code, never from input.
_SQL: dict[tuple[str, ...], str] = {}


def dumps(value: Any) -> str:
    return json.dumps(value, default=to_text, separators=(",", ":"), sort_keys=False)


def _create_private(path: Path) -> None:
    """Create the journal file empty with mode 0600 (an empty file is an empty SQLite
    database): SQLite would create it 0644, and gives its -wal and -shm the database file's
    mode. An existing file keeps its mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # it exists; or SQLite's own open reports why it cannot be created
        return
    os.close(fd)


class Journal:
    """A tradepipe journal file. Not thread-safe: one Journal per thread or event loop."""

    def __init__(self, path: Path, db: Database) -> None:
        self.path = path
        self.db = db
        self.conn: sqlite3.Connection = db.conn
        self.group: GroupCommit | None = None

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Journal:
        path = Path(path)
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
            self.group = GroupCommit(self.conn, asyncio.get_running_loop())
        return self.group

    def ungroup(self) -> None:
        """Commit what is pending and go back to one commit per transaction."""
        if self.group is not None:
            self.group.flush()
            self.group = None

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
        return self.db.atomic()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        row = self.conn.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params).fetchall()]

    def _insert(self, table: str, row: Mapping[str, Any]) -> int:
        shape = (table, *row)
        sql = _SQL.get(shape)
        if sql is None:
            columns, marks = ", ".join(row), ", ".join("?" for _ in row)
            sql = _SQL[shape] = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        cursor = self.conn.execute(sql, [_value(v) for v in row.values()])
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _update(self, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        shape = (table, *values, "WHERE", *key)
        sql = _SQL.get(shape)
        if sql is None:
            sets = ", ".join(f"{column} = ?" for column in values)
            where = " AND ".join(f"{column} = ?" for column in key)
            sql = _SQL[shape] = f"UPDATE {table} SET {sets} WHERE {where}"
        params = [_value(v) for v in values.values()]
        return self.conn.execute(sql, [*params, *key.values()]).rowcount

    # -- audit trail ---------------------------------------------------------------------------

    def _event(self, kind: str, subject: str, detail: Mapping[str, Any], at: Any = None) -> int:
        """Append one audit event chained to the last; call inside the write's transaction."""
        last = self.conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
        event = {
            "id": last[0] + 1 if last else 1,
            "at": to_text(at) if at is not None else datetime.now(UTC).isoformat(),
            "kind": kind,
            "subject": subject,
            "detail": json.dumps(
                {k: v for k, v in detail.items() if v is not None},
                default=to_text,
                separators=(",", ":"),
                sort_keys=True,
            ),
        }
        prev = last[1] if last else GENESIS
        self.conn.execute(
            "INSERT INTO events (id, at, kind, subject, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*event.values(), prev, event_hash(prev, event)),
        )
        return int(event["id"])

    def record_operator_action(self, action: str, subject: str, at: datetime, **detail: Any) -> int:
        """Journal an operator's command; its event id names what the command places."""
        with self.transaction():
            return self._event("operator", subject, {"action": action, **detail}, at)

    def events(self, *, after: int = 0) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM events WHERE id > ? ORDER BY id", (after,))

    # -- signals -------------------------------------------------------------------------------

    def record_signal(self, **row: Any) -> int:
        """Insert one received request and commit it durably; returns the signal id."""
        for key in ("errors", "warnings"):
            row[key] = dumps(row.get(key) or [])
        with self.transaction():
            signal_id = self._insert("signals", row)
            detail = {k: row.get(k) for k in ("status", "strategy", "ticker", "action", "source")}
            detail["http_status"] = row.get("http_status")
            self._event("signal", f"signal {signal_id}", detail, row.get("received_at"))
            return signal_id

    def find_signal_by_key(self, strategy: str, dedupe_key: str, since: datetime) -> int | None:
        """The accepted signal of this strategy with this idempotency key, received since then."""
        return self._find_accepted(strategy, "dedupe_key", dedupe_key, since)

    def find_signal_by_body(self, strategy: str, body_hash: str, since: datetime) -> int | None:
        """The accepted signal of this strategy with this very body, received since then."""
        return self._find_accepted(strategy, "body_hash", body_hash, since)

    def _find_accepted(self, strategy: str, column: str, value: str, since: datetime) -> int | None:
        row = self.conn.execute(
            f"SELECT id FROM signals WHERE strategy = ? AND {column} = ? AND received_at >= ?"
            " AND status IN ('accepted', 'processed') ORDER BY id LIMIT 1",
            (strategy, value, since.isoformat()),
        ).fetchone()
        return row[0] if row else None

    def mark_signal_processed(self, signal_id: int, processed_at: datetime) -> None:
        with self.transaction():
            self._update(
                "signals",
                {"id": signal_id},
                {"status": "processed", "processed_at": processed_at},
            )
            self._event("signal", f"signal {signal_id}", {"status": "processed"}, processed_at)

    def signal(self, signal_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM signals WHERE id = ?", (signal_id,))

    def signals(self, *, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        if status:
            return self._all(
                "SELECT * FROM signals WHERE status = ? ORDER BY id DESC LIMIT ?", (status, limit)
            )
        return self._all("SELECT * FROM signals ORDER BY id DESC LIMIT ?", (limit,))

    def unprocessed_signals(self) -> list[dict[str, Any]]:
        """Accepted signals whose processing a stop interrupted, oldest first."""
        return self._all("SELECT * FROM signals WHERE status = 'accepted' ORDER BY id")

    # -- deliveries ----------------------------------------------------------------------------

    def ensure_delivery(self, **row: Any) -> dict[str, Any]:
        """Create the delivery of a signal to a subscription, or return the one a restart finds."""
        existing = self._one(
            "SELECT * FROM deliveries WHERE signal_id = ? AND subscription = ?",
            (row["signal_id"], row["subscription"]),
        )
        if existing is not None:
            return existing
        with self.transaction():
            delivery_id = self._insert("deliveries", row)
            detail = {k: row.get(k) for k in ("signal_id", "subscription", "account", "status")}
            self._event("delivery", f"delivery {delivery_id}", detail, row.get("created_at"))
        found = self._one("SELECT * FROM deliveries WHERE id = ?", (delivery_id,))
        assert found is not None
        return found

    def deliveries_with_status(self, status: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM deliveries WHERE status = ? ORDER BY id", (status,))

    def update_delivery(self, delivery_id: int, **values: Any) -> None:
        plan = values.get("plan")
        if isinstance(plan, str):
            plan = json.loads(plan)
        for key in ("plan", "provenance"):
            if key in values and not isinstance(values[key], str | None):
                values[key] = dumps(values[key])
        with self.transaction():
            self._update("deliveries", {"id": delivery_id}, values)
            if "status" in values:
                detail = {k: values.get(k) for k in ("status", "reason")}
                if plan:
                    detail["plan"] = plan.get("summary") or plan.get("reason")
                self._event("delivery", f"delivery {delivery_id}", detail, values.get("updated_at"))

    def delivery(self, delivery_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM deliveries WHERE id = ?", (delivery_id,))

    def deliveries_for(self, signal_ids: Sequence[int]) -> list[dict[str, Any]]:
        if not signal_ids:
            return []
        marks = ", ".join("?" for _ in signal_ids)
        return self._all(
            f"SELECT * FROM deliveries WHERE signal_id IN ({marks}) ORDER BY id", list(signal_ids)
        )

    # -- orders and fills ----------------------------------------------------------------------

    def insert_order(self, **row: Any) -> int:
        """Journal an order *before* it is sent, so a crash can always ask the broker about it."""
        with self.transaction():
            order_id = self._insert("orders", row)
            detail = {k: row.get(k) for k in _ORDER_DETAIL}
            self._event("order", row["client_order_id"], detail, row.get("created_at"))
            return order_id

    def update_order(
        self, client_order_id: str, *, row: Mapping[str, Any] | None = None, **values: Any
    ) -> None:
        """`row`: the order's row as read in this same turn, when the caller has it (its status
        and filled quantity decide whether this is an event); read here otherwise."""
        with self.transaction():
            if row is not None:
                before = (row["status"], row["filled_quantity"])
            else:
                before = self.conn.execute(
                    "SELECT status, filled_quantity FROM orders WHERE client_order_id = ?",
                    (client_order_id,),
                ).fetchone()
            self._update("orders", {"client_order_id": client_order_id}, values)
            # A poll that finds nothing new is not an event.
            status = str(values.get("status", before[0] if before else ""))
            filled = to_text(values.get("filled_quantity")) or (before[1] if before else None)
            if before is not None and (status, filled) != (before[0], before[1]):
                detail = {
                    "status": status,
                    "filled_quantity": filled,
                    "average_fill_price": values.get("average_fill_price"),
                    "broker_message": values.get("broker_message"),
                }
                self._event("order", client_order_id, detail, values.get("updated_at"))

    def order_by_client_id(self, client_order_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,))

    def orders(
        self, *, account: str | None = None, signal_id: int | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        where, params = _filters(account=account, signal_id=signal_id)
        return self._all(f"SELECT * FROM orders{where} ORDER BY id DESC LIMIT ?", [*params, limit])

    def working_orders(self, account: str, ticker: str | None = None) -> list[dict[str, Any]]:
        """Orders the journal believes are at the broker and not done."""
        where = f"account = ? AND status IN ({', '.join(repr(w) for w in sorted(WORKING))})"
        if ticker is None:
            return self._all(f"SELECT * FROM orders WHERE {where} ORDER BY id", (account,))
        return self._all(
            f"SELECT * FROM orders WHERE {where} AND ticker = ? ORDER BY id", (account, ticker)
        )

    def known_order_ids(self, client_order_ids: Sequence[str]) -> set[str]:
        """Which of these client order ids the journal has."""
        if not client_order_ids:
            return set()
        marks = ", ".join("?" for _ in client_order_ids)
        rows = self.conn.execute(
            f"SELECT client_order_id FROM orders WHERE client_order_id IN ({marks})",
            list(client_order_ids),
        )
        return {row[0] for row in rows}

    def submitting_orders(self, account: str) -> list[dict[str, Any]]:
        """Orders journaled for sending whose answer never came back (a stop came first)."""
        return self._all(
            "SELECT * FROM orders WHERE status = 'submitting' AND account = ? ORDER BY id",
            (account,),
        )

    def record_reconciliation(self, subject: str, at: datetime, **detail: Any) -> None:
        with self.transaction():
            self._event("reconciliation", subject, detail, at)

    def unknown_orders(self, account: str, ticker: str | None = None) -> list[dict[str, Any]]:
        """Orders whose broker answer was lost: to be settled by looking their id up."""
        if ticker is None:
            return self._all(
                "SELECT * FROM orders WHERE status = 'unknown' AND account = ? ORDER BY id",
                (account,),
            )
        return self._all(
            "SELECT * FROM orders WHERE status = 'unknown' AND account = ? AND ticker = ?"
            " ORDER BY id",
            (account, ticker),
        )

    def order_by_id(self, order_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM orders WHERE id = ?", (order_id,))

    def bracket_children(self, account: str, ticker: str | None = None) -> list[dict[str, Any]]:
        """Take-profit / stop-loss children not yet done with, oldest first."""
        where = "account = ? AND parent_id IS NOT NULL AND status IN (" + _LIVE_ORDER + ")"
        if ticker is None:
            return self._all(f"SELECT * FROM orders WHERE {where} ORDER BY id", (account,))
        return self._all(
            f"SELECT * FROM orders WHERE {where} AND ticker = ? ORDER BY id", (account, ticker)
        )

    def siblings(self, order: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The other children of an order's parent."""
        return self._all(
            "SELECT * FROM orders WHERE parent_id = ? AND id != ? ORDER BY id",
            (order["parent_id"], order["id"]),
        )

    def orders_for_deliveries(self, delivery_ids: Sequence[int]) -> list[dict[str, Any]]:
        if not delivery_ids:
            return []
        marks = ", ".join("?" for _ in delivery_ids)
        return self._all(
            f"SELECT * FROM orders WHERE delivery_id IN ({marks}) ORDER BY id", list(delivery_ids)
        )

    def record_fill(
        self,
        *,
        fill_id: str,
        order_id: int,
        account: str,
        ticker: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        filled_at: datetime,
    ) -> bool:
        """Journal a fill and move the position it changes; False if it was journaled before."""
        with self.transaction():
            try:
                self._insert(
                    "fills",
                    {
                        "fill_id": fill_id,
                        "order_id": order_id,
                        "account": account,
                        "ticker": ticker,
                        "side": side,
                        "quantity": quantity,
                        "price": price,
                        "filled_at": filled_at,
                    },
                )
            except sqlite3.IntegrityError:
                return False
            detail = {"order_id": order_id, "account": account, "ticker": ticker, "side": side}
            detail |= {"quantity": quantity, "price": price}
            self._event("fill", fill_id, detail, filled_at)
            signed = quantity if side == "buy" else -quantity
            current = self.position(account, ticker)
            old_qty = current[0] if current else Decimal(0)
            old_avg = current[1] if current else None
            new_qty, new_avg = apply_fill(old_qty, old_avg, signed, price)
            self.conn.execute(
                "INSERT INTO positions (account, ticker, quantity, average_price, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, ticker) DO UPDATE SET"
                " quantity = excluded.quantity, average_price = excluded.average_price,"
                " updated_at = excluded.updated_at",
                (account, ticker, to_text(new_qty), to_text(new_avg), filled_at.isoformat()),
            )
            return True

    def order_fills(self, order_id: int) -> list[tuple[str, Decimal, Decimal]]:
        """An order's journaled fills as (the broker's fill id, quantity, price)."""
        rows = self.conn.execute(
            "SELECT account, fill_id, quantity, price FROM fills WHERE order_id = ? ORDER BY id",
            (order_id,),
        ).fetchall()
        return [
            (
                r["fill_id"].removeprefix(f"{r['account']}:"),
                Decimal(r["quantity"]),
                Decimal(r["price"]),
            )
            for r in rows
        ]

    def fills(self, *, account: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        where, params = _filters(account=account)
        return self._all(f"SELECT * FROM fills{where} ORDER BY id DESC LIMIT ?", [*params, limit])

    def position(self, account: str, ticker: str) -> tuple[Decimal, Decimal | None] | None:
        row = self.conn.execute(
            "SELECT quantity, average_price FROM positions WHERE account = ? AND ticker = ?",
            (account, ticker),
        ).fetchone()
        if row is None:
            return None
        return Decimal(row[0]), Decimal(row[1]) if row[1] is not None else None

    def positions(self, *, account: str | None = None) -> list[dict[str, Any]]:
        where, params = _filters(account=account)
        extra = " AND" if where else " WHERE"
        return self._all(
            f"SELECT * FROM positions{where}{extra} quantity != '0' ORDER BY account, ticker",
            params,
        )

    # -- the paper broker's books --------------------------------------------------------------

    def paper_cash(self, account: str, initial: Decimal) -> Decimal:
        row = self.conn.execute(
            "SELECT cash FROM paper_accounts WHERE account = ?", (account,)
        ).fetchone()
        if row is not None:
            return Decimal(row[0])
        with self.transaction():
            self.conn.execute(
                "INSERT INTO paper_accounts (account, cash) VALUES (?, ?)",
                (account, to_text(initial)),
            )
        return initial

    def paper_position(self, account: str, ticker: str) -> tuple[Decimal, Decimal | None]:
        row = self.conn.execute(
            "SELECT quantity, average_price FROM paper_positions WHERE account = ? AND ticker = ?",
            (account, ticker),
        ).fetchone()
        if row is None:
            return Decimal(0), None
        return Decimal(row[0]), Decimal(row[1]) if row[1] is not None else None

    def paper_positions(self, account: str) -> list[tuple[str, Decimal, Decimal | None]]:
        rows = self.conn.execute(
            "SELECT ticker, quantity, average_price FROM paper_positions"
            " WHERE account = ? AND quantity != '0' ORDER BY ticker",
            (account,),
        ).fetchall()
        return [(r[0], Decimal(r[1]), Decimal(r[2]) if r[2] is not None else None) for r in rows]

    def paper_mark(self, account: str, ticker: str) -> Decimal | None:
        row = self.conn.execute(
            "SELECT price FROM paper_marks WHERE account = ? AND ticker = ?", (account, ticker)
        ).fetchone()
        return Decimal(row[0]) if row else None

    def set_paper_mark(self, account: str, ticker: str, price: Decimal, at: datetime) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO paper_marks (account, ticker, price, marked_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (account, ticker) DO UPDATE SET price = excluded.price,"
                " marked_at = excluded.marked_at",
                (account, ticker, to_text(price), at.isoformat()),
            )

    def paper_order(self, account: str, client_order_id: str) -> dict[str, Any] | None:
        return self._one(
            "SELECT * FROM paper_orders WHERE account = ? AND client_order_id = ?",
            (account, client_order_id),
        )

    def paper_open_orders(self, account: str, ticker: str | None = None) -> list[dict[str, Any]]:
        """Working paper orders (held bracket legs excluded), oldest first."""
        # The status list repeats the live index's condition word for word, so SQLite uses it.
        live = "status IN ('accepted', 'partially_filled', 'held') AND status != 'held'"
        if ticker is None:
            return self._all(
                f"SELECT * FROM paper_orders WHERE account = ? AND {live} ORDER BY rowid",
                (account,),
            )
        return self._all(
            f"SELECT * FROM paper_orders WHERE account = ? AND {live}"
            " AND json_extract(request, '$.ticker') = ? ORDER BY rowid",
            (account, ticker),
        )

    def paper_fills(self, account: str, client_order_id: str) -> list[dict[str, Any]]:
        return self._all(
            "SELECT * FROM paper_fills WHERE account = ? AND client_order_id = ? ORDER BY rowid",
            (account, client_order_id),
        )

    def paper_ticker_orders(self, account: str, ticker: str) -> dict[str, str]:
        """client order id → status of every open or held paper order for the ticker."""
        rows = self.conn.execute(
            "SELECT client_order_id, status FROM paper_orders WHERE account = ?"
            " AND status IN ('accepted', 'partially_filled', 'held')"
            " AND json_extract(request, '$.ticker') = ?",
            (account, ticker),
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def paper_children(self, account: str, parent: str) -> list[dict[str, Any]]:
        return self._all(
            "SELECT * FROM paper_orders WHERE account = ? AND parent = ? ORDER BY rowid",
            (account, parent),
        )

    def paper_insert_order(self, **row: Any) -> None:
        self._insert("paper_orders", row)

    def paper_update_order(self, account: str, client_order_id: str, **values: Any) -> None:
        self._update(
            "paper_orders", {"account": account, "client_order_id": client_order_id}, values
        )

    def paper_apply_fill(
        self,
        *,
        account: str,
        fill_id: str,
        client_order_id: str,
        ticker: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        filled_at: datetime,
        cash: Decimal,
        multiplier: Decimal = Decimal(1),
    ) -> None:
        """Book one paper execution: the fill, the position and the cash move together. Cash
        moves by price × quantity × multiplier (a future's point value, SPEC §12)."""
        self._insert(
            "paper_fills",
            {
                "fill_id": fill_id,
                "account": account,
                "client_order_id": client_order_id,
                "ticker": ticker,
                "side": side,
                "quantity": quantity,
                "price": price,
                "filled_at": filled_at,
            },
        )
        signed = quantity if side == "buy" else -quantity
        old_qty, old_avg = self.paper_position(account, ticker)
        new_qty, new_avg = apply_fill(old_qty, old_avg, signed, price)
        self.conn.execute(
            "INSERT INTO paper_positions (account, ticker, quantity, average_price)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (account, ticker) DO UPDATE SET"
            " quantity = excluded.quantity, average_price = excluded.average_price",
            (account, ticker, to_text(new_qty), to_text(new_avg)),
        )
        self.conn.execute(
            "UPDATE paper_accounts SET cash = ? WHERE account = ?",
            (to_text(cash - signed * price * multiplier), account),
        )


def apply_fill(
    quantity: Decimal, average: Decimal | None, signed_fill: Decimal, price: Decimal
) -> tuple[Decimal, Decimal | None]:
    """A position after a fill: adding moves the average, reducing keeps it, crossing resets it."""
    new_quantity = quantity + signed_fill
    if new_quantity == 0:
        return Decimal(0), None
    if quantity == 0 or (quantity > 0) != (new_quantity > 0):
        return new_quantity, price
    if (quantity > 0) == (signed_fill > 0):
        assert average is not None
        return new_quantity, (quantity * average + signed_fill * price) / new_quantity
    return new_quantity, average


def _filters(**filters: Any) -> tuple[str, list[Any]]:
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f"{k} = ?" for k in used), list(used.values())
