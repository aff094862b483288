"""Orders and fills: every order journaled before it is sent, each fill once (by the broker's
fill id), moving its position (positions.py) in the same transaction; order and fill changes are
audit events."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.core.model import LIVE_ORDER, OrderStatus
from tradepipe.core.reconcile import WORKING
from tradepipe.journal.events import append as append_event
from tradepipe.journal.events import event as audit_event
from tradepipe.journal.positions import move_position
from tradepipe.journal.rows import (
    OrderRow,
    as_read,
    filters,
    insert,
    many,
    many_rows,
    one_row,
    sql_in,
    to_text,
    typed,
    update_returning,
    utc_text,
)

if TYPE_CHECKING:
    from tradepipe.journal import Journal

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
_LIVE_ORDER = sql_in(LIVE_ORDER)


def _live(journal: Journal) -> dict[int, OrderRow]:
    """Every order not yet done with, id → row, oldest first, kept in memory as written
    (issue 15): `insert_order_row` and `update_order` are the one writer of orders, and keep
    each row they write (as a read would give it back) or let it go once it is done. Read again
    from the file after any rollback on the journal's connection (`Journal.rollbacks`) and when
    an engine starts (`Journal.forget_memory`: what a restart reads)."""
    memo = journal.live_orders_memo
    if memo is None or memo[0] != journal.rollbacks:
        sql = f"SELECT * FROM orders WHERE status IN ({_LIVE_ORDER}) ORDER BY id"
        rows = many_rows(OrderRow, journal.conn, sql)
        memo = journal.live_orders_memo = (journal.rollbacks, {r["id"]: r for r in rows})
    return memo[1]


def _note(journal: Journal, row: OrderRow) -> None:
    """An order's row as just written: kept while it is live, let go once done."""
    memo = journal.live_orders_memo
    if memo is None or memo[0] != journal.rollbacks:
        return  # read again at its next use
    live = memo[1]
    order_id = row["id"]
    if row["status"] not in LIVE_ORDER:
        live.pop(order_id, None)
        return
    known, newest = order_id in live, next(reversed(live), None)
    live[order_id] = row
    if not known and newest is not None and order_id < newest:  # back among the live
        journal.live_orders_memo = (memo[0], dict(sorted(live.items())))


def _live_rows(journal: Journal, account: str, ticker: str | None, keep: Any) -> list[OrderRow]:
    return [
        row.copy()
        for row in _live(journal).values()
        if row["account"] == account and (ticker is None or row["ticker"] == ticker) and keep(row)
    ]


# -- orders ------------------------------------------------------------------------------------


# An order's row as SELECT * reads it, before any answer: what the columns not written hold.
_NEW_ORDER = {
    "id": None,
    "client_order_id": None,
    "delivery_id": None,
    "signal_id": None,
    "subscription": None,
    "account": None,
    "ticker": None,
    "side": None,
    "quantity": None,
    "filled_quantity": "0",
    "average_fill_price": None,
    "order_type": None,
    "limit_price": None,
    "stop_price": None,
    "trail_amount": None,
    "trail_percent": None,
    "time_in_force": None,
    "role": None,
    "parent_id": None,
    "status": None,
    "broker_order_id": None,
    "broker_message": None,
    "created_at": None,
    "updated_at": None,
    "replaces": None,
    "extended_hours": 0,
}


def insert_order(journal: Journal, /, **row: Any) -> int:
    """Journal an order *before* it is sent, so a crash can always ask the broker about it."""
    return insert_order_row(journal, **row)["id"]


def insert_order_row(journal: Journal, /, **row: Any) -> OrderRow:
    """`insert_order`, answering the row as written (as `order_by_client_id` would read it): the
    caller holds the truth and need not read it back."""
    detail = {k: row.get(k) for k in _ORDER_DETAIL}
    event = audit_event("order", row["client_order_id"], detail, row.get("created_at"))
    order_id = journal.write_one(lambda: insert(journal.conn, "orders", row), event)
    journal.orders_written += 1
    written = {**_NEW_ORDER, **{k: as_read(v) for k, v in row.items()}, "id": order_id}
    _note(journal, typed(OrderRow, dict(written)))
    return typed(OrderRow, written)


def update_order(
    journal: Journal,
    /,
    client_order_id: str,
    *,
    row: OrderRow | None = None,
    **values: Any,
) -> None:
    """`row`: the order's row as read in this same turn, when the caller has it (its status
    and filled quantity decide whether this is an event); read here otherwise."""
    conn = journal.conn
    if row is not None:
        before = (row["status"], row["filled_quantity"])
    else:
        before = conn.execute(
            "SELECT status, filled_quantity FROM orders WHERE client_order_id = ?",
            (client_order_id,),
        ).fetchone()
    # A poll that finds nothing new is not an event.
    event = None
    status = str(values.get("status", before[0] if before else ""))
    filled = to_text(values.get("filled_quantity")) or (before[1] if before else None)
    if before is not None and (status, filled) != (before[0], before[1]):
        detail = {
            "status": status,
            "filled_quantity": filled,
            "average_fill_price": values.get("average_fill_price"),
            "broker_message": values.get("broker_message"),
        }
        event = audit_event("order", client_order_id, detail, values.get("updated_at"))
    key = {"client_order_id": client_order_id}
    written = journal.write_one(lambda: update_returning(conn, "orders", key, values), event)
    journal.orders_written += 1
    if written:
        _note(journal, typed(OrderRow, written[0]))


def order_by_client_id(journal: Journal, client_order_id: str) -> OrderRow | None:
    sql = "SELECT * FROM orders WHERE client_order_id = ?"
    return one_row(OrderRow, journal.conn, sql, (client_order_id,))


def orders(
    journal: Journal,
    *,
    account: str | None = None,
    signal_id: int | None = None,
    limit: int = 200,
) -> list[OrderRow]:
    where, params = filters(account=account, signal_id=signal_id)
    sql = f"SELECT * FROM orders{where} ORDER BY id DESC LIMIT ?"
    return many_rows(OrderRow, journal.conn, sql, [*params, limit])


def working_orders(journal: Journal, account: str, ticker: str | None = None) -> list[OrderRow]:
    """Orders the journal believes are at the broker and not done."""
    return _live_rows(journal, account, ticker, lambda row: row["status"] in WORKING)


def known_order_ids(journal: Journal, client_order_ids: Sequence[str]) -> set[str]:
    """Which of these client order ids the journal has."""
    if not client_order_ids:
        return set()
    marks = ", ".join("?" for _ in client_order_ids)
    rows = journal.conn.execute(
        f"SELECT client_order_id FROM orders WHERE client_order_id IN ({marks})",
        list(client_order_ids),
    )
    return {row[0] for row in rows}


def submitting_orders(journal: Journal, account: str) -> list[OrderRow]:
    """Orders journaled for sending whose answer never came back (a stop came first)."""
    return _live_rows(journal, account, None, lambda row: row["status"] == OrderStatus.SUBMITTING)


def unknown_orders(journal: Journal, account: str, ticker: str | None = None) -> list[OrderRow]:
    """Orders whose broker answer was lost: to be settled by looking their id up."""
    return _live_rows(journal, account, ticker, lambda row: row["status"] == OrderStatus.UNKNOWN)


def order_by_id(journal: Journal, order_id: int) -> OrderRow | None:
    return one_row(OrderRow, journal.conn, "SELECT * FROM orders WHERE id = ?", (order_id,))


def bracket_children(journal: Journal, account: str, ticker: str | None = None) -> list[OrderRow]:
    """Take-profit / stop-loss children not yet done with, oldest first."""
    return _live_rows(journal, account, ticker, lambda row: row["parent_id"] is not None)


def siblings(journal: Journal, order: OrderRow) -> list[OrderRow]:
    """The other children of an order's parent."""
    return many_rows(
        OrderRow,
        journal.conn,
        "SELECT * FROM orders WHERE parent_id = ? AND id != ? ORDER BY id",
        (order["parent_id"], order["id"]),
    )


def orders_for_deliveries(journal: Journal, delivery_ids: Sequence[int]) -> list[OrderRow]:
    if not delivery_ids:
        return []
    marks = ", ".join("?" for _ in delivery_ids)
    return many_rows(
        OrderRow,
        journal.conn,
        f"SELECT * FROM orders WHERE delivery_id IN ({marks}) ORDER BY id",
        list(delivery_ids),
    )


# -- fills (each moves its position: positions.py) -------------------------------------------------


def record_fill(
    journal: Journal,
    *,
    fill_id: str,
    order_id: int,
    account: str,
    ticker: str,
    side: str,
    quantity: Decimal,
    price: Decimal,
    filled_at: datetime,
    fee: Decimal | None = None,
    fee_currency: str | None = None,
) -> bool:
    """Journal a fill and move the position it changes; False if it was journaled before."""
    conn = journal.conn
    row = {
        "fill_id": fill_id,
        "order_id": order_id,
        "account": account,
        "ticker": ticker,
        "side": side,
        "quantity": quantity,
        "price": price,
        "filled_at": filled_at,
    }
    if fee is not None:  # the same statement shape as before for brokers that report none
        row |= {"fee": fee, "fee_currency": fee_currency}
    with journal.transaction():
        try:
            insert(conn, "fills", row)
        except sqlite3.IntegrityError:
            return False
        detail = {"order_id": order_id, "account": account, "ticker": ticker, "side": side}
        detail |= {"quantity": quantity, "price": price}
        append_event(conn, "fill", fill_id, detail, filled_at, group=journal.group)
        signed = quantity if side == "buy" else -quantity
        move_position(journal, account, ticker, signed, price, filled_at)
        return True


def set_fill_fee(
    journal: Journal, fill_id: str, fee: Decimal, fee_currency: str | None, at: datetime
) -> bool:
    """The fee of a fill journaled without one (IB reports an execution's commission after the
    execution), with a `fill_fee` audit event; False when the fill has a fee already (a fee,
    once journaled, is never changed) or is not journaled."""
    with journal.transaction():
        changed = journal.conn.execute(
            "UPDATE fills SET fee = ?, fee_currency = ? WHERE fill_id = ? AND fee IS NULL",
            (to_text(fee), fee_currency, fill_id),
        ).rowcount
        if changed:
            detail = {"fee": fee, "fee_currency": fee_currency}
            append_event(journal.conn, "fill_fee", fill_id, detail, at, group=journal.group)
    return bool(changed)


def feeless_fills(journal: Journal, account: str, since: datetime) -> list[tuple[str, str]]:
    """The account's fills journaled without a fee that filled at `since` or later, as (the
    client order id of the order filled, the fill id), oldest first: the fills whose fee a
    broker that reports it after the fill (`set_fill_fee`) may still report."""
    rows = journal.conn.execute(
        "SELECT o.client_order_id, f.fill_id FROM fills f JOIN orders o ON o.id = f.order_id"
        " WHERE f.account = ? AND f.fee IS NULL AND f.filled_at >= ? ORDER BY f.id",
        (account, utc_text(since)),
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def order_fills(journal: Journal, order_id: int) -> list[tuple[str, Decimal, Decimal]]:
    """An order's journaled fills as (the broker's fill id, quantity, price)."""
    rows = journal.conn.execute(
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


def fills(
    journal: Journal, *, account: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    where, params = filters(account=account)
    return many(
        journal.conn, f"SELECT * FROM fills{where} ORDER BY id DESC LIMIT ?", [*params, limit]
    )


def subscription_tickers(journal: Journal, account: str, subscription: str) -> list[str]:
    """The tickers a subscription has placed orders for on an account (its `flatten_at`)."""
    rows = journal.conn.execute(
        "SELECT DISTINCT ticker FROM orders WHERE account = ? AND subscription = ?",
        (account, subscription),
    ).fetchall()
    return sorted(str(row[0]) for row in rows)
