"""The notification outbox (SPEC §14): a row per notification and target, written inside the
transaction of its cause, then marked sent, retried or given up by the sender. Giving one up
is an audit event too: a notification that never arrived is never silent.

Times are ISO-8601 in UTC with microseconds, so that text order is time order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tradepipe.core.notify import Note, NotifyKind
from tradepipe.journal.events import append

if TYPE_CHECKING:
    from tradepipe.journal import Journal

PENDING = "pending"
SENT = "sent"
GIVEN_UP = "given_up"


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone: notification times are aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def add_notifications(
    journal: Journal,
    targets: Iterable[str],
    kind: NotifyKind,
    subject: str,
    text: str,
    at: datetime,
) -> int:
    """One pending row per target; inside the cause's transaction when there is one (a unit
    inside a unit is part of it). Answers how many rows were written."""
    rows = [(t, str(kind), subject, text, _utc(at), PENDING, _utc(at)) for t in targets]
    if not rows:
        return 0
    with journal.transaction():
        journal.conn.executemany(
            "INSERT INTO notifications (target, kind, subject, text, created_at, status,"
            " next_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def pending_notifications(journal: Journal) -> list[tuple[str, Note, datetime, int]]:
    """Every pending row, oldest first: (target, note, next attempt, attempts so far)."""
    rows = journal.conn.execute(
        "SELECT id, target, kind, subject, text, created_at, next_at, attempts"
        " FROM notifications WHERE status = 'pending' ORDER BY id"
    ).fetchall()
    return [
        (
            str(row[1]),
            Note(
                id=int(row[0]),
                kind=NotifyKind(row[2]),
                subject=str(row[3]),
                text=str(row[4]),
                created_at=datetime.fromisoformat(str(row[5])),
            ),
            datetime.fromisoformat(str(row[6])),
            int(row[7]),
        )
        for row in rows
    ]


def mark_notifications_sent(journal: Journal, ids: Sequence[int], at: datetime) -> None:
    with journal.transaction():
        journal.conn.executemany(
            "UPDATE notifications SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
            " error = NULL WHERE id = ? AND status = 'pending'",
            [(_utc(at), i) for i in ids],
        )


def retry_notifications(
    journal: Journal, ids: Sequence[int], error: str, next_at: datetime
) -> None:
    with journal.transaction():
        journal.conn.executemany(
            "UPDATE notifications SET attempts = attempts + 1, error = ?, next_at = ?"
            " WHERE id = ? AND status = 'pending'",
            [(error, _utc(next_at), i) for i in ids],
        )


def give_up_notifications(journal: Journal, ids: Sequence[int], error: str, at: datetime) -> None:
    """No more attempts: the rows say why, and the audit trail keeps that they were lost."""
    with journal.transaction():
        for i in ids:
            journal.conn.execute(
                "UPDATE notifications SET status = 'given_up', attempts = attempts + 1,"
                " error = ?, next_at = ? WHERE id = ? AND status = 'pending'",
                (error, _utc(at), i),
            )
            append(
                journal.conn,
                "notification",
                f"notification {i}",
                {"status": GIVEN_UP, "error": error},
                at,
                group=journal.group,
            )


def notifications(journal: Journal, *, limit: int = 100) -> list[dict[str, Any]]:
    rows = journal.conn.execute(
        "SELECT * FROM notifications ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [dict(row) for row in rows]


def notification_backlog(journal: Journal) -> int:
    row = journal.conn.execute(
        "SELECT count(*) FROM notifications WHERE status = 'pending'"
    ).fetchone()
    return int(row[0])


def last_heard(journal: Journal, strategy: str) -> tuple[datetime | None, datetime | None]:
    """For the silence alarm after a restart: when the strategy's last request was journaled,
    and when its last silence notification was written."""
    signal = journal.conn.execute(
        "SELECT max(received_at) FROM signals WHERE strategy = ?", (strategy,)
    ).fetchone()[0]
    alert = journal.conn.execute(
        "SELECT max(created_at) FROM notifications WHERE kind = 'silence' AND subject = ?",
        (f"strategy {strategy}",),
    ).fetchone()[0]
    return (
        datetime.fromisoformat(signal) if signal else None,
        datetime.fromisoformat(alert) if alert else None,
    )


def last_told(journal: Journal, kind: NotifyKind, subject: str) -> datetime | None:
    """When the last notification of `kind` about `subject` was written (the daily summary
    after a restart: a day's summary is written once)."""
    at = journal.conn.execute(
        "SELECT max(created_at) FROM notifications WHERE kind = ? AND subject = ?",
        (str(kind), subject),
    ).fetchone()[0]
    return datetime.fromisoformat(at) if at else None
