"""A row as the journal writes and reads it: values spelled as text (Decimals exactly, datetimes
as ISO-8601, JSON compact), and the INSERT/UPDATE statements built once per shape and cached;
the types of the rows that cross the engine's seams (`OrderRow`, `DeliveryRow`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypedDict, TypeVar, cast

# -- the rows that cross the engine's seams ----------------------------------------------------
# One key per column of the table after every migration (tests/test_row_types.py keeps them to
# the schema), each as the journal reads it back: STRICT tables hold Decimals and datetimes as
# TEXT, so a quantity is a str; a nullable column may be None. They are the plain dicts a read
# gives (`one`, `many`); the type only names their keys.


class OrderRow(TypedDict):
    """A row of `orders`."""

    id: int
    client_order_id: str
    delivery_id: int | None
    signal_id: int | None
    subscription: str | None
    account: str
    ticker: str
    side: str
    quantity: str
    filled_quantity: str
    average_fill_price: str | None
    order_type: str
    limit_price: str | None
    stop_price: str | None
    trail_amount: str | None
    trail_percent: str | None
    time_in_force: str
    role: str
    parent_id: int | None
    status: str
    broker_order_id: str | None
    broker_message: str | None
    created_at: str
    updated_at: str
    replaces: str | None  # 0007_order_replaces
    extended_hours: int  # 0008_order_extended_hours: 0 or 1


class DeliveryRow(TypedDict):
    """A row of `deliveries`."""

    id: int
    signal_id: int
    subscription: str
    account: str
    ticker: str
    status: str
    reason: str | None
    plan: str | None  # JSON
    provenance: str | None  # JSON
    created_at: str
    updated_at: str


Row = TypeVar("Row", OrderRow, DeliveryRow)


def typed(kind: type[Row], row: dict[str, Any]) -> Row:
    """A row of `kind`'s table as read or as written, named as its type (the dict itself, not
    a copy): with `one_row` and `many_rows`, the one place a dict becomes a typed row."""
    return cast(Row, row)


def to_text(value: Any) -> str | None:
    """The journal's spelling of a value: Decimals exactly, datetimes as ISO-8601."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        text = str(value)
        if "." not in text and "E" not in text:  # a whole number already spelled plainly
            return text
        if value != value.to_integral_value():
            return text
        # A whole number spelled with an exponent or zero decimals: its digits, exactly (not
        # normalize(), which rounds to the context's 28 digits).
        whole = format(value, "f")
        return whole.rstrip("0").rstrip(".") if "." in whole else whole
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _value(value: Any) -> Any:
    """A parameter as the journal stores it (Decimals and datetimes as text)."""
    return to_text(value) if isinstance(value, Decimal | datetime) else value


def as_read(value: Any) -> Any:
    """A value as the journal reads it back: text for Decimals, datetimes and str enums."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    return _value(value)


# The statements insert and update build, by (table, columns…): the same few shapes recur
# for every signal, and building their text again each time was a measurable share of a trade.
# Table and column names come from the journal's own code, never from input.
_SQL: dict[tuple[str, ...], str] = {}


def sql_in(statuses: Iterable[StrEnum]) -> str:
    """Statuses as the list of an SQL `IN (…)`, in a stable order (the members' own values)."""
    return ", ".join(f"'{status.value}'" for status in sorted(statuses))


def dumps(value: Any) -> str:
    return json.dumps(value, default=to_text, separators=(",", ":"), sort_keys=False)


def one(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
    row = conn.execute(sql, params).fetchone()
    return dict(row) if row is not None else None


def many(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(sql, params).fetchall()]


def one_row(
    kind: type[Row], conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()
) -> Row | None:
    """`one`, of `kind`'s table (`SELECT *`)."""
    return cast("Row | None", one(conn, sql, params))


def many_rows(
    kind: type[Row], conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()
) -> list[Row]:
    """`many`, of `kind`'s table (`SELECT *`)."""
    return cast("list[Row]", many(conn, sql, params))


def insert(conn: sqlite3.Connection, table: str, row: Mapping[str, Any]) -> int:
    shape = (table, *row)
    sql = _SQL.get(shape)
    if sql is None:
        columns, marks = ", ".join(row), ", ".join("?" for _ in row)
        sql = _SQL[shape] = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    cursor = conn.execute(sql, [_value(v) for v in row.values()])
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def update(
    conn: sqlite3.Connection, table: str, key: Mapping[str, Any], values: Mapping[str, Any]
) -> int:
    shape = (table, *values, "WHERE", *key)
    sql = _SQL.get(shape)
    if sql is None:
        sets = ", ".join(f"{column} = ?" for column in values)
        where = " AND ".join(f"{column} = ?" for column in key)
        sql = _SQL[shape] = f"UPDATE {table} SET {sets} WHERE {where}"
    params = [_value(v) for v in values.values()]
    return conn.execute(sql, [*params, *key.values()]).rowcount


def update_returning(
    conn: sqlite3.Connection, table: str, key: Mapping[str, Any], values: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """`update`, answering the rows as written (`RETURNING *`: what a read would answer)."""
    shape = (table, *values, "WHERE", *key, "RETURNING")
    sql = _SQL.get(shape)
    if sql is None:
        sets = ", ".join(f"{column} = ?" for column in values)
        where = " AND ".join(f"{column} = ?" for column in key)
        sql = _SQL[shape] = f"UPDATE {table} SET {sets} WHERE {where} RETURNING *"
    params = [_value(v) for v in values.values()]
    return [dict(row) for row in conn.execute(sql, [*params, *key.values()]).fetchall()]


def insert_returning(
    conn: sqlite3.Connection, table: str, row: Mapping[str, Any]
) -> dict[str, Any]:
    """`insert`, answering the row as written (`RETURNING *`, defaults filled in)."""
    written = _insert_returning(conn, table, row, "")
    assert written is not None
    return written


def insert_new_returning(
    conn: sqlite3.Connection, table: str, row: Mapping[str, Any], key: str
) -> dict[str, Any] | None:
    """`insert_returning`, unless the table has a row with the same `key` (its unique
    columns, "a, b"): None then, and nothing written."""
    return _insert_returning(conn, table, row, f" ON CONFLICT ({key}) DO NOTHING")


def _insert_returning(
    conn: sqlite3.Connection, table: str, row: Mapping[str, Any], conflict: str
) -> dict[str, Any] | None:
    shape = (table, *row, "RETURNING", conflict)
    sql = _SQL.get(shape)
    if sql is None:
        columns, marks = ", ".join(row), ", ".join("?" for _ in row)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks}){conflict} RETURNING *"
        _SQL[shape] = sql
    rows = conn.execute(sql, [_value(v) for v in row.values()]).fetchall()
    assert len(rows) <= 1
    return dict(rows[0]) if rows else None


def filters(**filters: Any) -> tuple[str, list[Any]]:
    """A WHERE clause matching every filter given (None: not filtered on)."""
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f"{k} = ?" for k in used), list(used.values())


def utc_text(moment: datetime) -> str:
    """An aware moment as the journal stores it: ISO-8601 in UTC, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone: journaled times are aware")
    return moment.astimezone(UTC).isoformat()
