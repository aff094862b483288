"""Equity snapshots (SPEC §13): one row per account at start, after fills and every 60 s; the
figures the risk limits need are read back from them.

Equity and cash are TEXT (exact Decimals); `taken_at` is ISO-8601 in UTC, so text order is time
order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tradepipe.journal.rows import to_text, utc_text

if TYPE_CHECKING:
    from tradepipe.journal import Journal

# Why a snapshot was taken.
AT_START = "start"
AFTER_FILL = "fill"
PERIODIC = "periodic"
AFTER_MARK = "mark"  # an operator moved a paper account's mark (`tradepipe paper quote`)


@dataclass(frozen=True, slots=True)
class EquitySnapshot:
    id: int
    account: str
    equity: Decimal
    cash: Decimal | None
    taken_at: datetime
    reason: str


def _row(row: tuple[object, ...]) -> EquitySnapshot:
    return EquitySnapshot(
        id=int(str(row[0])),
        account=str(row[1]),
        equity=Decimal(str(row[2])),
        cash=Decimal(str(row[3])) if row[3] is not None else None,
        taken_at=datetime.fromisoformat(str(row[4])),
        reason=str(row[5]),
    )


_COLUMNS = "id, account, equity, cash, taken_at, reason"


def record_equity(
    journal: Journal,
    account: str,
    equity: Decimal,
    cash: Decimal | None,
    taken_at: datetime,
    reason: str,
) -> int:
    """Record one snapshot in its own transaction; its id."""
    cursor = journal.execute_one(
        "INSERT INTO equity_snapshots (account, equity, cash, taken_at, reason)"
        " VALUES (?, ?, ?, ?, ?)",
        (account, to_text(equity), to_text(cash), utc_text(taken_at), reason),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def latest_equity(
    journal: Journal, account: str, at_or_before: datetime | None = None
) -> EquitySnapshot | None:
    """The account's last snapshot (taken at or before `at_or_before` when given)."""
    if at_or_before is None:
        row = journal.conn.execute(
            f"SELECT {_COLUMNS} FROM equity_snapshots WHERE account = ?"
            " ORDER BY taken_at DESC, id DESC LIMIT 1",
            (account,),
        ).fetchone()
    else:
        row = journal.conn.execute(
            f"SELECT {_COLUMNS} FROM equity_snapshots WHERE account = ? AND taken_at <= ?"
            " ORDER BY taken_at DESC, id DESC LIMIT 1",
            (account, utc_text(at_or_before)),
        ).fetchone()
    return _row(row) if row is not None else None


def day_start_equity(journal: Journal, account: str, day_start: datetime) -> Decimal | None:
    """The equity at the trading day's start: the last snapshot at or before it, else (the
    account's first day) the first one after it. None: no snapshot at all."""
    before = latest_equity(journal, account, day_start)
    if before is not None:
        return before.equity
    row = journal.conn.execute(
        "SELECT equity FROM equity_snapshots WHERE account = ? AND taken_at > ?"
        " ORDER BY taken_at, id LIMIT 1",
        (account, utc_text(day_start)),
    ).fetchone()
    return Decimal(row[0]) if row is not None else None


def high_water_mark(
    journal: Journal, account: str, since: datetime | None = None
) -> Decimal | None:
    """The highest equity snapshotted (since `since` when given); None: no snapshot."""
    rows = journal.conn.execute(
        "SELECT equity FROM equity_snapshots WHERE account = ? AND taken_at >= ?",
        (account, utc_text(since) if since is not None else ""),
    ).fetchall()
    # Compared as Decimals in Python: TEXT would order "9" above "10", REAL would round.
    return max((Decimal(r[0]) for r in rows), default=None)


def equity_snapshots(
    journal: Journal, account: str, since: datetime | None = None, limit: int = 1000
) -> list[EquitySnapshot]:
    """The account's snapshots, oldest first (since `since` when given), at most `limit`."""
    rows = journal.conn.execute(
        f"SELECT {_COLUMNS} FROM equity_snapshots WHERE account = ? AND taken_at >= ?"
        " ORDER BY taken_at, id LIMIT ?",
        (account, utc_text(since) if since is not None else "", limit),
    ).fetchall()
    return [_row(r) for r in rows]
