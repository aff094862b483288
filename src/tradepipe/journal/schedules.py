"""Scheduled work (SPEC §13): one row per item — a delayed delivery, the cancel of an order
left unfilled, a flatten_at firing — with its due time and its status. The rows are the truth;
the engine's timer only wakes the engine, and every pending row is armed again at start. Each
item is written once (unique per delivery, per order, per firing) and each change of its status
appends a `schedule` event to the audit trail in the same transaction.

Times are ISO-8601 in UTC, so that they order as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradepipe.core.schedules import ScheduleStatus
from tradepipe.journal.events import append
from tradepipe.journal.rows import as_read, many, one, utc_text

if TYPE_CHECKING:
    from tradepipe.journal import Journal

_COLUMNS = (
    "kind",
    "subscription",
    "account",
    "ticker",
    "delivery_id",
    "client_order_id",
    "detail",
    "due_at",
    "status",
    "reason",
    "created_at",
    "updated_at",
)


def add_schedule(
    journal: Journal,
    /,
    *,
    kind: str,
    due_at: datetime,
    at: datetime,
    status: str = ScheduleStatus.PENDING,
    reason: str | None = None,
    **what: Any,
) -> tuple[dict[str, Any], bool]:
    """Journal one item unless it is there already (the same delivery's delay, order's cancel,
    subscription's firing): answers its row, and whether it was written now."""
    row = {
        "kind": str(kind),
        **{k: what.get(k) for k in ("subscription", "account", "ticker", "delivery_id")},
        "client_order_id": what.get("client_order_id"),
        "detail": what.get("detail"),
        "due_at": utc_text(due_at),
        "status": str(status),
        "reason": reason,
        "created_at": utc_text(at),
        "updated_at": utc_text(at),
    }
    unknown = set(what) - set(_COLUMNS)
    if unknown:
        raise TypeError(f"not a schedule column: {sorted(unknown)}")
    with journal.transaction():
        cursor = journal.conn.execute(
            f"INSERT OR IGNORE INTO schedules ({', '.join(row)})"
            f" VALUES ({', '.join('?' * len(row))})",
            [as_read(v) for v in row.values()],
        )
        if cursor.rowcount == 0:
            existing = _existing(journal, row)
            assert existing is not None
            return existing, False
        schedule_id = cursor.lastrowid
        assert schedule_id is not None
        detail = {k: row[k] for k in ("kind", "subscription", "delivery_id", "client_order_id")}
        detail |= {"due_at": row["due_at"], "status": row["status"], "reason": reason}
        append(journal.conn, "schedule", f"schedule {schedule_id}", detail, at, group=journal.group)
    return {"id": schedule_id, **row}, True


def _existing(journal: Journal, row: dict[str, Any]) -> dict[str, Any] | None:
    key = {
        "delay": ("delivery_id",),
        "cancel_after": ("client_order_id",),
        "flatten_at": ("subscription", "due_at"),
    }[row["kind"]]
    where = " AND ".join(f"{k} = ?" for k in key)
    return one(
        journal.conn,
        f"SELECT * FROM schedules WHERE kind = ? AND {where}",
        (row["kind"], *(row[k] for k in key)),
    )


def finish_schedule(
    journal: Journal, /, schedule_id: int, status: str, reason: str, at: datetime
) -> bool:
    """A pending item is done, missed or canceled, with why; False when it was no longer
    pending (nothing written)."""
    with journal.transaction():
        cursor = journal.conn.execute(
            "UPDATE schedules SET status = ?, reason = ?, updated_at = ?"
            " WHERE id = ? AND status = 'pending'",
            (str(status), reason, utc_text(at), schedule_id),
        )
        if cursor.rowcount == 0:
            return False
        detail = {"status": str(status), "reason": reason}
        append(journal.conn, "schedule", f"schedule {schedule_id}", detail, at, group=journal.group)
    return True


def schedule(journal: Journal, schedule_id: int) -> dict[str, Any] | None:
    return one(journal.conn, "SELECT * FROM schedules WHERE id = ?", (schedule_id,))


def pending_schedules(journal: Journal) -> list[dict[str, Any]]:
    """Every item still to do, the soonest first."""
    return many(
        journal.conn, "SELECT * FROM schedules WHERE status = 'pending' ORDER BY due_at, id"
    )


def schedules(
    journal: Journal,
    *,
    kind: str | None = None,
    subscription: str | None = None,
    delivery_ids: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """Items by kind, subscription or delivery (an order's cancel counts for its delivery)."""
    clauses: list[str] = []
    params: list[Any] = []
    if kind is not None:
        clauses.append("kind = ?")
        params.append(kind)
    if subscription is not None:
        clauses.append("subscription = ?")
        params.append(subscription)
    if delivery_ids:
        marks = ", ".join("?" * len(delivery_ids))
        clauses.append(f"delivery_id IN ({marks})")
        params.extend(delivery_ids)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return many(journal.conn, f"SELECT * FROM schedules{where} ORDER BY due_at, id", params)
