"""Positions: each account + ticker's quantity and average price, moved by every fill journaled
(`record_fill` in orders.py calls `move_position` in its transaction) and kept in memory as
written; `apply_fill` is the arithmetic, shared with the paper broker's books."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.journal.rows import filters, many, to_text

if TYPE_CHECKING:
    from tradepipe.journal import Journal


def _held(journal: Journal) -> dict[tuple[str, str], tuple[Decimal, Decimal | None]]:
    """Every journaled position, (account, ticker) → (quantity, average price), kept in memory
    as written (issue 15): `move_position` is the one writer of positions, and writes the row
    and the memory together. Read again from the file after any rollback on the journal's
    connection (`Journal.rollbacks`), and when all positions are listed (`positions`), where
    reconciliation reads them."""
    memo = journal.positions_memo
    if memo is None or memo[0] != journal.rollbacks:
        rows = journal.conn.execute(
            "SELECT account, ticker, quantity, average_price FROM positions"
        ).fetchall()
        held = {
            (r[0], r[1]): (Decimal(r[2]), Decimal(r[3]) if r[3] is not None else None) for r in rows
        }
        memo = journal.positions_memo = (journal.rollbacks, held)
    return memo[1]


def move_position(
    journal: Journal,
    account: str,
    ticker: str,
    signed: Decimal,
    price: Decimal,
    at: datetime,
) -> None:
    """The position after a fill of `signed` quantity (negative: sold) at `price`, written
    inside the caller's transaction (the fill's), in the file and in memory."""
    held = _held(journal)
    current = held.get((account, ticker))
    old_qty = current[0] if current else Decimal(0)
    old_avg = current[1] if current else None
    new_qty, new_avg = apply_fill(old_qty, old_avg, signed, price)
    quantity_text, average_text = to_text(new_qty), to_text(new_avg)
    journal.conn.execute(
        "INSERT INTO positions (account, ticker, quantity, average_price, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, ticker) DO UPDATE SET"
        " quantity = excluded.quantity, average_price = excluded.average_price,"
        " updated_at = excluded.updated_at",
        (account, ticker, quantity_text, average_text, at.isoformat()),
    )
    # As a read of the row would give it back (its stored spelling).
    held[(account, ticker)] = (
        Decimal(str(quantity_text)),
        Decimal(average_text) if average_text is not None else None,
    )


def position(journal: Journal, account: str, ticker: str) -> tuple[Decimal, Decimal | None] | None:
    return _held(journal).get((account, ticker))


def positions(journal: Journal, *, account: str | None = None) -> list[dict[str, Any]]:
    journal.positions_memo = None  # read from the file here; memory again from it
    where, params = filters(account=account)
    extra = " AND" if where else " WHERE"
    return many(
        journal.conn,
        f"SELECT * FROM positions{where}{extra} quantity != '0' ORDER BY account, ticker",
        params,
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
