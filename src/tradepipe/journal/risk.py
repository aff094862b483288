"""What the risk limits' running counts start from (SPEC §13): read once, when the engine starts
(or `tradepipe risk` runs without a daemon), never per signal: orders sent in the last minute,
entries sent today, the fills that built each position, when a subscription was last resumed.

Times are ISO-8601 in UTC in the journal, so text order is time order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from tradepipe.core.model import OrderRole, OrderStatus, Side
from tradepipe.core.tally import FillBooked
from tradepipe.core.trading_states import Scope, TradingState
from tradepipe.journal import events as _events
from tradepipe.journal.rows import utc_text

if TYPE_CHECKING:
    from tradepipe.journal import Journal


def orders_sent_since(journal: Journal, account: str, since: datetime) -> list[datetime]:
    """When the account's orders journaled since `since` were sent, oldest first: one per order
    sent on its own or as a bracket's parent (a native bracket's legs go with it in one call;
    a held emulated leg is not sent yet)."""
    rows = journal.conn.execute(
        "SELECT created_at FROM orders WHERE account = ? AND created_at >= ?"
        " AND parent_id IS NULL AND status != ? ORDER BY created_at",
        (account, utc_text(since), str(OrderStatus.HELD)),
    ).fetchall()
    return [datetime.fromisoformat(str(r[0])) for r in rows]


def entries_since(journal: Journal, subscription: str, since: datetime) -> int:
    """Entry orders (a reversal's entry included) the subscription sent since `since`."""
    row = journal.conn.execute(
        "SELECT count(*) FROM orders WHERE subscription = ? AND role = ? AND created_at >= ?",
        (subscription, str(OrderRole.ENTRY), utc_text(since)),
    ).fetchone()
    return int(row[0])


def booked_fills(journal: Journal, accounts: Iterable[str]) -> list[FillBooked]:
    """Every fill of these accounts, oldest first, with the subscription of the order it filled:
    replayed into the positions' round trips (core/tally.py)."""
    wanted = sorted(set(accounts))
    if not wanted:
        return []
    marks = ", ".join("?" * len(wanted))
    rows = journal.conn.execute(
        "SELECT f.account, f.ticker, f.side, f.quantity, f.price, f.filled_at, o.subscription"
        f" FROM fills f JOIN orders o ON o.id = f.order_id WHERE f.account IN ({marks})"
        " ORDER BY f.id",
        wanted,
    ).fetchall()
    return [
        FillBooked(
            account=str(r[0]),
            ticker=str(r[1]),
            side=Side(r[2]),
            quantity=Decimal(str(r[3])),
            price=Decimal(str(r[4])),
            at=datetime.fromisoformat(str(r[5])),
            subscription=r[6],
        )
        for r in rows
    ]


def last_fill_prices(journal: Journal, account: str) -> dict[str, Decimal]:
    """Each ticker's last fill price on the account: what an open position is valued at until
    tradepipe sees a newer price for it."""
    rows = journal.conn.execute(
        "SELECT ticker, price FROM fills WHERE id IN"
        " (SELECT max(id) FROM fills WHERE account = ? GROUP BY ticker)",
        (account,),
    ).fetchall()
    return {str(r[0]): Decimal(str(r[1])) for r in rows}


def last_resumed_at(journal: Journal, scope: Scope) -> datetime | None:
    """When the scope's state last went back to active (a `tradepipe resume`, a trip's end)."""
    _events.written(journal)
    rows = journal.conn.execute(
        "SELECT at, detail FROM events WHERE kind = 'trading_state' AND subject = ?"
        " ORDER BY id DESC",
        (str(scope),),
    ).fetchall()
    for at, detail in rows:
        if json.loads(detail).get("state") == str(TradingState.ACTIVE):
            return datetime.fromisoformat(str(at))
    return None
