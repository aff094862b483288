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


# The first event of a transaction reads the chain's head inside its own INSERT (another
# connection may have appended since our last commit) and computes its hash there, with the
# function `chain_functions` gives the journal's connection: one statement, not two.
_APPEND_AT_HEAD = (
    "INSERT INTO events (id, at, kind, subject, detail, prev_hash, hash)"
    " SELECT head.id + 1, ?1, ?2, ?3, ?4, head.hash,"
    " tradepipe_event_hash(head.hash, head.id + 1, ?1, ?2, ?3, ?4)"
    " FROM (SELECT coalesce((SELECT id FROM events ORDER BY id DESC LIMIT 1), 0) AS id,"
    " coalesce((SELECT hash FROM events ORDER BY id DESC LIMIT 1), ?5) AS hash) AS head"
    " RETURNING id, hash"
)


def _chain_hash(prev: str, event_id: int, at: str, kind: str, subject: str, detail: str) -> str:
    return event_hash(
        prev, {"id": event_id, "at": at, "kind": kind, "subject": subject, "detail": detail}
    )


def chain_functions(conn: sqlite3.Connection) -> None:
    """Give the connection the hash of the chain (for appends at a head read in SQL)."""
    conn.create_function("tradepipe_event_hash", 6, _chain_hash, deterministic=True)


def append(
    conn: sqlite3.Connection,
    kind: str,
    subject: str,
    detail: Mapping[str, Any],
    at: Any = None,
    *,
    group: GroupCommit | None = None,
) -> int:
    """Append one audit event chained to the last; call inside the write's transaction.
    `group`: the journal's group commit, whose open transaction remembers the head it wrote
    (its connection has `chain_functions`)."""
    event: dict[str, Any] = {
        "id": 0,
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
    last = group.events_head if group is not None else None
    if group is not None and last is None:
        fields = (event["at"], kind, subject, event["detail"], GENESIS)
        ((event_id, digest),) = conn.execute(_APPEND_AT_HEAD, fields).fetchall()
        event_id = int(event_id)
    else:
        if last is None:
            last = conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
        event_id = event["id"] = last[0] + 1 if last else 1
        prev = last[1] if last else GENESIS
        digest = event_hash(prev, event)
        conn.execute(
            "INSERT INTO events (id, at, kind, subject, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*event.values(), prev, digest),
        )
    if group is not None and conn.in_transaction:
        group.events_head = (event_id, digest)
    return event_id


def record_operator_action(
    journal: Journal, /, action: str, subject: str, at: datetime, **detail: Any
) -> int:
    """Journal an operator's command; its event id names what the command places."""
    with journal.transaction():
        detail = {"action": action, **detail}
        return append(journal.conn, "operator", subject, detail, at, group=journal.group)


def record_reconciliation(journal: Journal, /, subject: str, at: datetime, **detail: Any) -> None:
    with journal.transaction():
        append(journal.conn, "reconciliation", subject, detail, at, group=journal.group)


def events(journal: Journal, *, after: int = 0) -> list[dict[str, Any]]:
    return many(journal.conn, "SELECT * FROM events WHERE id > ? ORDER BY id", (after,))
