"""The paper broker's own books: what a broker would hold on its side of the wire (cash,
positions, marks, orders and executions), kept apart from the journal's view of the same trades.

An account's cash, positions, marks and working orders are read once and then kept in memory
as the truth (issue 15): every write of them goes through this module, which writes the row and
the memory together (an order's row as its write gives it back), so they are never read back.
Only the process holding the journal's lock writes the paper books (the CLI goes through the
running daemon, or runs alone under the lock), and all its paper brokers share one memory per
journal. The memory is read again from the file:

- after any rollback on the journal's connection (`Journal.rollbacks` moved), which may have
  undone a write the memory holds;
- when the paper broker connects, and when it lists all its positions (`forget_paper_books`):
  that is what reconciliation starts from, so a change made to the file by hand (a test's
  "trade at the broker") is seen there, as a remote broker's would be.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.core.model import RESTING_ORDER
from tradepipe.journal.positions import apply_fill
from tradepipe.journal.rows import (
    insert_new_returning,
    insert_returning,
    many,
    one,
    to_text,
    update_returning,
)

if TYPE_CHECKING:
    from tradepipe.journal import Journal


class _Books:
    """One paper account's cash, positions (ticker → quantity as stored, quantity, average),
    marks and working orders (client order id → ticker, row; oldest first), as this process
    last read or wrote them; None: not read yet."""

    __slots__ = ("cash", "epoch", "marks", "positions", "working")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.cash: Decimal | None = None
        self.positions: dict[str, tuple[str, Decimal, Decimal | None]] | None = None
        self.marks: dict[str, Decimal] | None = None
        self.working: dict[str, tuple[str, dict[str, Any]]] | None = None


# A paper order that may still fill (core.model.RESTING_ORDER), spelled as the partial index
# paper_orders_live says it, word for word: SQLite uses that index only for the same terms.
_WORKING_SQL = "status IN ('accepted', 'partially_filled', 'held')"


def _books(journal: Journal, account: str) -> _Books:
    books = journal.paper_memo.get(account)
    if books is None or books.epoch != journal.rollbacks:
        books = journal.paper_memo[account] = _Books(journal.rollbacks)
    return books


def _as_read(value: Decimal) -> Decimal:
    """The value as a read of the row would give it back (its stored spelling)."""
    text = to_text(value)
    assert text is not None
    return Decimal(text)


class Written:
    """The paper orders and fills written while it is watched (`watch_paper_rows`), each row as
    the write gave it back: a broker answers a new order from these, not by reading it again."""

    __slots__ = ("fills", "inserted", "orders")

    def __init__(self) -> None:
        self.orders: dict[tuple[str, str], dict[str, Any]] = {}  # in the order first written
        self.fills: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.inserted: set[tuple[str, str]] = set()

    def children(self, account: str, parent: str) -> list[dict[str, Any]] | None:
        """The rows of an order's children if the order was created while watched (None if
        not): a child names a parent that exists, and ids are never created twice, so each
        of its children was created after it, here too, in this order."""
        if (account, parent) not in self.inserted:
            return None
        return [
            row
            for (owner, _), row in self.orders.items()
            if owner == account and row["parent"] == parent
        ]


@contextmanager
def watch_paper_rows(journal: Journal) -> Iterator[Written]:
    """The paper order and fill rows written inside the block (never awaited in)."""
    written = journal.paper_written = Written()
    try:
        yield written
    finally:
        journal.paper_written = None


def forget_paper_books(journal: Journal, account: str) -> None:
    """Read the account's cash, positions and marks from the file again at their next use."""
    journal.paper_memo.pop(account, None)


def paper_cash(journal: Journal, account: str, initial: Decimal) -> Decimal:
    books = _books(journal, account)
    if books.cash is not None:
        return books.cash
    row = journal.conn.execute(
        "SELECT cash FROM paper_accounts WHERE account = ?", (account,)
    ).fetchone()
    if row is not None:
        books.cash = Decimal(row[0])
        return books.cash
    with journal.transaction():
        journal.conn.execute(
            "INSERT INTO paper_accounts (account, cash) VALUES (?, ?)",
            (account, to_text(initial)),
        )
    _books(journal, account).cash = _as_read(initial)
    return initial


def _positions(journal: Journal, account: str) -> dict[str, tuple[str, Decimal, Decimal | None]]:
    books = _books(journal, account)
    if books.positions is None:
        rows = journal.conn.execute(
            "SELECT ticker, quantity, average_price FROM paper_positions WHERE account = ?",
            (account,),
        ).fetchall()
        books.positions = {
            r[0]: (r[1], Decimal(r[1]), Decimal(r[2]) if r[2] is not None else None) for r in rows
        }
    return books.positions


def paper_position(journal: Journal, account: str, ticker: str) -> tuple[Decimal, Decimal | None]:
    held = _positions(journal, account).get(ticker)
    if held is None:
        return Decimal(0), None
    return held[1], held[2]


def paper_positions(journal: Journal, account: str) -> list[tuple[str, Decimal, Decimal | None]]:
    """The positions not flat, by ticker (as `quantity != '0' ORDER BY ticker` reads them)."""
    held = _positions(journal, account)
    return [(t, q, a) for t, (text, q, a) in sorted(held.items()) if text != "0"]


def paper_mark(journal: Journal, account: str, ticker: str) -> Decimal | None:
    books = _books(journal, account)
    if books.marks is None:
        rows = journal.conn.execute(
            "SELECT ticker, price FROM paper_marks WHERE account = ?", (account,)
        ).fetchall()
        books.marks = {r[0]: Decimal(r[1]) for r in rows}
    return books.marks.get(ticker)


def set_paper_mark(
    journal: Journal, account: str, ticker: str, price: Decimal, at: datetime
) -> None:
    journal.execute_one(
        "INSERT INTO paper_marks (account, ticker, price, marked_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (account, ticker) DO UPDATE SET price = excluded.price,"
        " marked_at = excluded.marked_at",
        (account, ticker, to_text(price), at.isoformat()),
    )
    books = _books(journal, account)
    if books.marks is not None:
        books.marks[ticker] = _as_read(price)


def _working(journal: Journal, account: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The account's working orders (held bracket legs too), kept as written: every write of
    an order gives its row back (RETURNING) and `_note` keeps it or lets it go."""
    books = _books(journal, account)
    if books.working is None:
        rows = many(
            journal.conn,
            f"SELECT * FROM paper_orders WHERE account = ? AND {_WORKING_SQL} ORDER BY rowid",
            (account,),
        )
        books.working = {
            r["client_order_id"]: (json.loads(r["request"])["ticker"], r) for r in rows
        }
    return books.working


def _note(journal: Journal, row: dict[str, Any]) -> None:
    """An order's row as just written: still working, or no longer."""
    working = _books(journal, row["account"]).working
    if working is None:
        return
    cid = row["client_order_id"]
    if row["status"] in RESTING_ORDER:
        kept = working.get(cid)
        ticker = kept[0] if kept else json.loads(row["request"])["ticker"]
        working[cid] = (ticker, row)
    else:
        working.pop(cid, None)


def paper_working_order(
    journal: Journal, account: str, client_order_id: str
) -> dict[str, Any] | None:
    """The order's row if it is working (held legs too), else None."""
    kept = _working(journal, account).get(client_order_id)
    return dict(kept[1]) if kept else None


def paper_order(journal: Journal, account: str, client_order_id: str) -> dict[str, Any] | None:
    return one(
        journal.conn,
        "SELECT * FROM paper_orders WHERE account = ? AND client_order_id = ?",
        (account, client_order_id),
    )


def paper_open_orders(
    journal: Journal, account: str, ticker: str | None = None
) -> list[dict[str, Any]]:
    """Working paper orders (held bracket legs excluded), oldest first; of the ticker as its
    request spells it, when given."""
    return [
        dict(row)
        for spelled, row in _working(journal, account).values()
        if row["status"] != "held" and (ticker is None or spelled == ticker)
    ]


def paper_fills(journal: Journal, account: str, client_order_id: str) -> list[dict[str, Any]]:
    return many(
        journal.conn,
        "SELECT * FROM paper_fills WHERE account = ? AND client_order_id = ? ORDER BY rowid",
        (account, client_order_id),
    )


def paper_ticker_orders(journal: Journal, account: str, ticker: str) -> dict[str, str]:
    """client order id → status of every open or held paper order for the ticker."""
    working = _working(journal, account)
    return {cid: row["status"] for cid, (spelled, row) in working.items() if spelled == ticker}


def paper_children(journal: Journal, account: str, parent: str) -> list[dict[str, Any]]:
    return many(
        journal.conn,
        "SELECT * FROM paper_orders WHERE account = ? AND parent = ? ORDER BY rowid",
        (account, parent),
    )


def paper_insert_order(journal: Journal, /, **row: Any) -> dict[str, Any]:
    """Write a new order's row (in the state it ends in, if it does at once: one write, not an
    insert and an update); answers the row as written."""
    written = insert_returning(journal.conn, "paper_orders", row)
    return _inserted(journal, written)


def paper_insert_new_order(journal: Journal, /, **row: Any) -> dict[str, Any] | None:
    """`paper_insert_order`, unless the account has an order of this client order id already:
    None then, and nothing written (whether an order is new is learnt from its insert)."""
    key = "account, client_order_id"
    written = insert_new_returning(journal.conn, "paper_orders", row, key)
    return _inserted(journal, written) if written is not None else None


def _inserted(journal: Journal, written: dict[str, Any]) -> dict[str, Any]:
    _note(journal, written)
    if journal.paper_written is not None:
        key = (written["account"], written["client_order_id"])
        journal.paper_written.orders[key] = written
        journal.paper_written.inserted.add(key)
    return written


def paper_update_order(
    journal: Journal, /, account: str, client_order_id: str, **values: Any
) -> dict[str, Any] | None:
    """Change an order's row; answers the row as written (None: there is no such order)."""
    rows = update_returning(
        journal.conn,
        "paper_orders",
        {"account": account, "client_order_id": client_order_id},
        values,
    )
    if not rows:
        return None
    _note(journal, rows[0])
    if journal.paper_written is not None:
        journal.paper_written.orders[(account, client_order_id)] = rows[0]
    return rows[0]


def paper_apply_fill(
    journal: Journal,
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
    conn = journal.conn
    fill = insert_returning(
        conn,
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
    if journal.paper_written is not None:
        journal.paper_written.fills.setdefault((account, client_order_id), []).append(fill)
    signed = quantity if side == "buy" else -quantity
    old_qty, old_avg = paper_position(journal, account, ticker)
    new_qty, new_avg = apply_fill(old_qty, old_avg, signed, price)
    quantity_text = to_text(new_qty)
    assert quantity_text is not None
    conn.execute(
        "INSERT INTO paper_positions (account, ticker, quantity, average_price)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (account, ticker) DO UPDATE SET"
        " quantity = excluded.quantity, average_price = excluded.average_price",
        (account, ticker, quantity_text, to_text(new_avg)),
    )
    new_cash = cash - signed * price * multiplier
    moved = conn.execute(
        "UPDATE paper_accounts SET cash = ? WHERE account = ?", (to_text(new_cash), account)
    ).rowcount
    books = _books(journal, account)
    if books.positions is not None:
        average = _as_read(new_avg) if new_avg is not None else None
        books.positions[ticker] = (quantity_text, _as_read(new_qty), average)
    books.cash = _as_read(new_cash) if moved else None


def set_paper_chain(
    journal: Journal,
    account: str,
    underlying: str,
    contracts: list[tuple[str, str, Decimal]],
    at: datetime,
) -> None:
    """The chain an operator gives a paper account for an underlying: (expiration ISO date,
    "call"/"put", strike) rows, in place of any chain given before."""
    with journal.transaction():
        journal.conn.execute(
            "DELETE FROM paper_chains WHERE account = ? AND underlying = ?", (account, underlying)
        )
        journal.conn.executemany(
            "INSERT OR IGNORE INTO paper_chains"
            " (account, underlying, expiration, option_right, strike, given_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (account, underlying, expiration, right, to_text(strike), at.isoformat())
                for expiration, right, strike in contracts
            ],
        )


def paper_chain(journal: Journal, account: str, underlying: str) -> list[tuple[str, str, Decimal]]:
    rows = journal.conn.execute(
        "SELECT expiration, option_right, strike FROM paper_chains"
        " WHERE account = ? AND underlying = ?",
        (account, underlying),
    ).fetchall()
    return [(r[0], r[1], Decimal(r[2])) for r in rows]
