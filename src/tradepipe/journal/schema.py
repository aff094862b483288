"""The journal's schema: named migrations, each applied once and inside its own transaction, in
the order they are declared here (sqlite-utils' Migrations records which ran)."""

from __future__ import annotations

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


@migrations(name="0011_equity_snapshots")
def _equity_snapshots(db: Database) -> None:
    # SPEC §13: each account's equity at start, after every fill and every 60 s; the risk
    # figures (the day's starting equity, the high-water mark) are read from these rows.
    db.executescript(
        """
        CREATE TABLE equity_snapshots (
            id INTEGER PRIMARY KEY,
            account TEXT NOT NULL,
            equity TEXT NOT NULL,
            cash TEXT,
            taken_at TEXT NOT NULL,
            reason TEXT NOT NULL
        ) STRICT;
        CREATE INDEX equity_snapshots_account ON equity_snapshots(account, taken_at);
        """
    )


@migrations(name="0012_trading_states")
def _trading_states(db: Database) -> None:
    # SPEC §13: the state each scope is in (one row per scope; no row: active), set by a trip or
    # an operator and surviving restarts. Its history is the audit trail (kind "trading_state").
    db.executescript(
        """
        CREATE TABLE trading_states (
            scope_kind TEXT NOT NULL,
            scope_name TEXT NOT NULL,
            state TEXT NOT NULL,
            reason TEXT NOT NULL,
            source TEXT NOT NULL,
            limit_name TEXT,
            figures TEXT,
            set_at TEXT NOT NULL,
            until_at TEXT,
            PRIMARY KEY (scope_kind, scope_name)
        ) STRICT;
        """
    )


@migrations(name="0013_schedules")
def _schedules(db: Database) -> None:
    # SPEC §13: scheduled work — a delivery postponed by the signal's delay, the cancel of an
    # order left unfilled cancel_after seconds, a subscription's flatten_at firing. The rows are
    # the truth (a timer only wakes the engine; every pending row is armed again at start), and
    # each item exists once: one delay per delivery, one cancel per order, one firing per time.
    db.executescript(
        """
        CREATE TABLE schedules (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            subscription TEXT,
            account TEXT,
            ticker TEXT,
            delivery_id INTEGER REFERENCES deliveries(id),
            client_order_id TEXT,
            detail TEXT,
            due_at TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        ) STRICT;
        CREATE INDEX schedules_pending ON schedules(status) WHERE status = 'pending';
        CREATE INDEX schedules_delivery ON schedules(delivery_id) WHERE delivery_id IS NOT NULL;
        CREATE UNIQUE INDEX schedules_one_delay ON schedules(delivery_id) WHERE kind = 'delay';
        CREATE UNIQUE INDEX schedules_one_cancel ON schedules(client_order_id)
            WHERE kind = 'cancel_after';
        CREATE UNIQUE INDEX schedules_one_firing ON schedules(subscription, due_at)
            WHERE kind = 'flatten_at';
        """
    )


@migrations(name="0015_notifications")
def _notifications(db: Database) -> None:
    # SPEC §14: the outbox. One row per notification and target (a digest of its URL, never
    # the URL), written in the transaction of its cause and sent after, off the signal path:
    # a crash between the two leaves a pending row the next start sends.
    db.executescript(
        """
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at TEXT NOT NULL,
            sent_at TEXT,
            error TEXT
        ) STRICT;
        CREATE INDEX notifications_pending ON notifications(next_at) WHERE status = 'pending';
        CREATE INDEX notifications_kind ON notifications(kind, subject, created_at);
        """
    )


@migrations(name="0016_fill_fees")
def _fill_fees(db: Database) -> None:
    # SPEC §14: the report's P&L is net of the fees the broker reports. NULL: none reported.
    db.execute("ALTER TABLE fills ADD COLUMN fee TEXT")
    db.execute("ALTER TABLE fills ADD COLUMN fee_currency TEXT")


@migrations(name="0017_paper_chains")
def _paper_chains(db: Database) -> None:
    # SPEC §15: the option chain an operator gave a paper account for an underlying (`tradepipe
    # paper chain`), one row per listed contract; without rows the paper broker generates one.
    db.executescript(
        """
        CREATE TABLE paper_chains (
            account TEXT NOT NULL,
            underlying TEXT NOT NULL,
            expiration TEXT NOT NULL,
            option_right TEXT NOT NULL,
            strike TEXT NOT NULL,
            given_at TEXT NOT NULL,
            PRIMARY KEY (account, underlying, expiration, option_right, strike)
        ) STRICT;
        """
    )
