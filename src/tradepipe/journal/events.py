"""The audit trail: append-only events, each hash-chained to the one before (tradepipe.core.audit),
written inside the transaction of the change they record; operator actions are events too."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tradepipe.core.audit import GENESIS, event_hash
from tradepipe.journal.rows import many, to_text

if TYPE_CHECKING:
    from tradepipe.journal import Journal
    from tradepipe.journal.group_commit import GroupCommit


# Events written through the group commit wait in memory for the commit of their transaction
# (GroupCommit.defer_event) and go in with one statement per commit, chained in Python from the
# head this connection last committed; the statement inserts only while that head is still the
# table's last row (another connection may have appended since), else the head is read and the
# chain recomputed. One fixed text (the rows travel as one JSON array) keeps it prepared.
_APPEND_CHAIN = (
    "INSERT INTO events (id, at, kind, subject, detail, prev_hash, hash)"
    " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'),"
    " json_extract(value, '$[5]'), json_extract(value, '$[6]')"
    " FROM json_each(?1)"
    " WHERE coalesce((SELECT hash FROM events ORDER BY id DESC LIMIT 1), ?2) = ?3"
)

Pending = tuple[str, str, str, str]  # at, kind, subject, detail (JSON): an event without its place


def _head(conn: sqlite3.Connection) -> tuple[int, str]:
    last = conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    return (int(last[0]), str(last[1])) if last else (0, GENESIS)


def _chained(head: tuple[int, str], pending: list[Pending]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    event_id, prev = head
    for at, kind, subject, detail in pending:
        event_id += 1
        event = {"id": event_id, "at": at, "kind": kind, "subject": subject, "detail": detail}
        digest = event_hash(prev, event)
        rows.append([event_id, at, kind, subject, detail, prev, digest])
        prev = digest
    return rows


def write_chain(
    conn: sqlite3.Connection, head: tuple[int, str] | None, pending: list[Pending]
) -> tuple[int, str]:
    """Append the pending events after `head` (the chain's last (id, hash) as this connection
    knows it; None: unknown), inside the caller's transaction, which must already hold the
    write lock (it has written the rows these events record). Returns the new head."""
    if head is not None:
        rows = _chained(head, pending)
        if conn.execute(_APPEND_CHAIN, (json.dumps(rows), GENESIS, head[1])).rowcount:
            return rows[-1][0], rows[-1][6]
    head = _head(conn)  # another writer appended since (or first use): chain after theirs
    rows = _chained(head, pending)
    written = conn.execute(_APPEND_CHAIN, (json.dumps(rows), GENESIS, head[1])).rowcount
    if written != len(rows):  # under our write lock the head cannot move: never half a chain
        raise sqlite3.IntegrityError(f"audit chain: {written} of {len(rows)} events appended")
    return rows[-1][0], rows[-1][6]


def event(kind: str, subject: str, detail: Mapping[str, Any], at: Any = None) -> Pending:
    """An event ready to append (its place in the chain is given when it is written). Text
    that cannot be stored as UTF-8 (a lone surrogate) fails here, inside the write's unit, as
    binding it would have: the JSON the events travel in would store it changed, and the
    chain's hash would no longer match what is read back."""
    subject.encode()
    text = json.dumps(
        {k: v for k, v in detail.items() if v is not None},
        default=to_text,
        separators=(",", ":"),
        sort_keys=True,
    )
    stamped = to_text(at) if at is not None else None
    return (stamped or datetime.now(UTC).isoformat(), kind, subject, text)


def append(
    conn: sqlite3.Connection,
    kind: str,
    subject: str,
    detail: Mapping[str, Any],
    at: Any = None,
    *,
    group: GroupCommit | None = None,
) -> None:
    """Append one audit event chained to the last; call inside the write's transaction.
    `group`: the journal's group commit, which writes it with its transaction's other events
    just before the commit (a unit rolled back takes its events with it)."""
    pending = event(kind, subject, detail, at)
    if group is not None:
        group.defer_event(pending)
    else:
        write_chain(conn, None, [pending])


def record_operator_action(
    journal: Journal, /, action: str, subject: str, at: datetime, **detail: Any
) -> int:
    """Journal an operator's command; its event id names what the command places, so the event
    is written now (with any waiting ones before it), not at the commit."""
    with journal.transaction():
        pending = event("operator", subject, {"action": action, **detail}, at)
        if journal.group is None:
            return write_chain(journal.conn, None, [pending])[0]
        journal.group.defer_event(pending)
        head = journal.group.write_events()
        assert head is not None
        return head[0]


def record_reconciliation(journal: Journal, /, subject: str, at: datetime, **detail: Any) -> None:
    with journal.transaction():
        append(journal.conn, "reconciliation", subject, detail, at, group=journal.group)


def written(journal: Journal) -> None:
    """Before this connection reads the events table: the events it still holds go in."""
    if journal.group is not None:
        journal.group.write_events()


def events(journal: Journal, *, after: int = 0) -> list[dict[str, Any]]:
    written(journal)
    return many(journal.conn, "SELECT * FROM events WHERE id > ? ORDER BY id", (after,))
