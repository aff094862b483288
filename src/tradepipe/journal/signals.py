"""Signals and their deliveries: every received request as it arrived, and each signal's delivery
to a subscription with its plan and outcome; each change is an audit event in the same unit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradepipe.journal.events import append as append_event
from tradepipe.journal.events import event as audit_event
from tradepipe.journal.rows import (
    DeliveryRow,
    as_read,
    dumps,
    many,
    many_rows,
    one,
    one_row,
    typed,
    update,
)

if TYPE_CHECKING:
    from tradepipe.journal import Journal


# -- signals -----------------------------------------------------------------------------------


def record_signal(journal: Journal, /, **row: Any) -> int:
    """Insert one received request (durable with the journal's next commit); its id."""
    signal_id = _record(journal, row, None)
    assert signal_id is not None
    return signal_id


def record_new_signal(journal: Journal, /, dedupe: str, since: datetime, **row: Any) -> int | None:
    """`record_signal` for an accepted signal, unless an accepted one of its strategy with the
    same `dedupe` column ("dedupe_key" or "body_hash") was received since then: its id, or None
    (a duplicate; nothing written). The look-up is part of the insert (one statement)."""
    return _record(journal, row, (dedupe, since))


# An accepted signal of a strategy with a key, received since a moment: what a new signal with
# that key duplicates. Said once, for the insert's guard and for the look-up of the original.
def _seen(column: str) -> str:
    assert column in ("dedupe_key", "body_hash")
    return (
        f"strategy = ? AND {column} = ? AND received_at >= ?"
        " AND status IN ('accepted', 'processed')"
    )


def _record(
    journal: Journal, row: dict[str, Any], unless_seen: tuple[str, datetime] | None
) -> int | None:
    for key in ("errors", "warnings"):
        row[key] = dumps(row.get(key) or [])
    columns, marks = ", ".join(row), ", ".join("?" for _ in row)
    params = [as_read(v) for v in row.values()]
    sql = f"INSERT INTO signals ({columns}) VALUES ({marks})"
    if unless_seen is not None:
        column, since = unless_seen
        sql = (
            f"INSERT INTO signals ({columns}) SELECT {marks}"
            f" WHERE NOT EXISTS (SELECT 1 FROM signals WHERE {_seen(column)})"
        )
        params += [row["strategy"], row[column], since.isoformat()]
    with journal.transaction():
        cursor = journal.conn.execute(sql, params)
        if cursor.rowcount == 0:
            return None
        signal_id = cursor.lastrowid
        assert signal_id is not None
        detail = {k: row.get(k) for k in ("status", "strategy", "ticker", "action", "source")}
        detail["http_status"] = row.get("http_status")
        subject, at = f"signal {signal_id}", row.get("received_at")
        append_event(journal.conn, "signal", subject, detail, at, group=journal.group)
        return signal_id


def find_signal_by_key(
    journal: Journal, strategy: str, dedupe_key: str, since: datetime
) -> int | None:
    """The accepted signal of this strategy with this idempotency key, received since then."""
    return find_seen_signal(journal, strategy, "dedupe_key", dedupe_key, since)


def find_signal_by_body(
    journal: Journal, strategy: str, body_hash: str, since: datetime
) -> int | None:
    """The accepted signal of this strategy with this very body, received since then."""
    return find_seen_signal(journal, strategy, "body_hash", body_hash, since)


def find_seen_signal(
    journal: Journal, strategy: str, column: str, value: str, since: datetime
) -> int | None:
    """The first accepted signal of this strategy whose `column` ("dedupe_key" or
    "body_hash") is `value`, received since then: what `record_new_signal` refused to
    duplicate."""
    row = journal.conn.execute(
        f"SELECT id FROM signals WHERE {_seen(column)} ORDER BY id LIMIT 1",
        (strategy, value, since.isoformat()),
    ).fetchone()
    return row[0] if row else None


def mark_signal_processed(journal: Journal, signal_id: int, processed_at: datetime) -> None:
    event = audit_event("signal", f"signal {signal_id}", {"status": "processed"}, processed_at)
    values = {"status": "processed", "processed_at": processed_at}
    journal.write_one(lambda: update(journal.conn, "signals", {"id": signal_id}, values), event)


def signal(journal: Journal, signal_id: int) -> dict[str, Any] | None:
    return one(journal.conn, "SELECT * FROM signals WHERE id = ?", (signal_id,))


def signals(
    journal: Journal, *, limit: int = 50, status: str | None = None
) -> list[dict[str, Any]]:
    if status:
        return many(
            journal.conn,
            "SELECT * FROM signals WHERE status = ? ORDER BY id DESC LIMIT ?",
            (status, limit),
        )
    return many(journal.conn, "SELECT * FROM signals ORDER BY id DESC LIMIT ?", (limit,))


def unprocessed_signals(journal: Journal) -> list[dict[str, Any]]:
    """Accepted signals whose processing a stop interrupted, oldest first."""
    return many(journal.conn, "SELECT * FROM signals WHERE status = 'accepted' ORDER BY id")


# -- deliveries --------------------------------------------------------------------------------


def ensure_delivery(journal: Journal, /, **row: Any) -> DeliveryRow:
    """Create the delivery of a signal to a subscription, or return the one a restart finds."""
    with journal.transaction():
        # Inserted unless a restart finds it: read only then.
        columns = ", ".join(row)
        cursor = journal.conn.execute(
            f"INSERT INTO deliveries ({columns}) VALUES ({', '.join('?' * len(row))})"
            " ON CONFLICT (signal_id, subscription) DO NOTHING",
            [as_read(v) for v in row.values()],
        )
        if cursor.rowcount == 0:
            existing = one_row(
                DeliveryRow,
                journal.conn,
                "SELECT * FROM deliveries WHERE signal_id = ? AND subscription = ?",
                (row["signal_id"], row["subscription"]),
            )
            assert existing is not None
            return existing
        delivery_id = cursor.lastrowid
        assert delivery_id is not None
        detail = {k: row.get(k) for k in ("signal_id", "subscription", "account", "status")}
        subject, at = f"delivery {delivery_id}", row.get("created_at")
        append_event(journal.conn, "delivery", subject, detail, at, group=journal.group)
    # The row as written (the columns not written are empty): not read back.
    written = {k: as_read(v) for k, v in row.items()}
    return typed(DeliveryRow, {"id": delivery_id, **dict.fromkeys(_DELIVERY_COLUMNS), **written})


_DELIVERY_COLUMNS = (
    "signal_id",
    "subscription",
    "account",
    "ticker",
    "status",
    "reason",
    "plan",
    "provenance",
    "created_at",
    "updated_at",
)


def deliveries_with_status(journal: Journal, status: str) -> list[DeliveryRow]:
    sql = "SELECT * FROM deliveries WHERE status = ? ORDER BY id"
    return many_rows(DeliveryRow, journal.conn, sql, (status,))


def update_delivery(journal: Journal, /, delivery_id: int, **values: Any) -> None:
    plan = values.get("plan")
    if isinstance(plan, str):
        plan = json.loads(plan)
    for key in ("plan", "provenance"):
        if key in values and not isinstance(values[key], str | None):
            values[key] = dumps(values[key])
    event = None
    if "status" in values:
        detail = {k: values.get(k) for k in ("status", "reason")}
        if plan:
            detail["plan"] = plan.get("summary") or plan.get("reason")
        subject = f"delivery {delivery_id}"
        event = audit_event("delivery", subject, detail, values.get("updated_at"))
    where = {"id": delivery_id}
    journal.write_one(lambda: update(journal.conn, "deliveries", where, values), event)


def delivery(journal: Journal, delivery_id: int) -> DeliveryRow | None:
    sql = "SELECT * FROM deliveries WHERE id = ?"
    return one_row(DeliveryRow, journal.conn, sql, (delivery_id,))


def deliveries_for(journal: Journal, signal_ids: Sequence[int]) -> list[DeliveryRow]:
    if not signal_ids:
        return []
    marks = ", ".join("?" for _ in signal_ids)
    return many_rows(
        DeliveryRow,
        journal.conn,
        f"SELECT * FROM deliveries WHERE signal_id IN ({marks}) ORDER BY id",
        list(signal_ids),
    )
