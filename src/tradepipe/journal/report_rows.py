"""What the performance report (SPEC §14) reads: every fill with its order's subscription and role
and its signal's strategy, `signalPrice` and `time`; the last mark per ticker; and the equity
snapshots. Rows only: core/report.py turns them into figures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradepipe.journal import Journal

# A bracket leg (and an emulated one) is journaled with its entry as parent: it belongs to the
# parent's subscription and signal when it carries none itself.
_FILLS = """
SELECT f.id, f.order_id, f.account, f.ticker, f.side, f.quantity, f.price, f.filled_at,
       f.fee, f.fee_currency, o.role, o.created_at AS submitted_at,
       coalesce(o.subscription, p.subscription) AS subscription,
       s.id AS signal_id, s.strategy, s.received_at, s.payload
FROM fills f
JOIN orders o ON o.id = f.order_id
LEFT JOIN orders p ON p.id = o.parent_id
LEFT JOIN signals s ON s.id = coalesce(o.signal_id, p.signal_id)
ORDER BY f.id
"""


@dataclass(frozen=True, slots=True)
class FillRow:
    id: int
    order_id: int
    account: str
    ticker: str
    side: str
    quantity: Decimal
    price: Decimal
    filled_at: datetime
    fee: Decimal | None
    fee_currency: str | None
    role: str | None
    submitted_at: datetime | None
    subscription: str | None
    strategy: str | None
    received_at: datetime | None
    signal_price: Decimal | None
    alert_at: datetime | None


def report_fills(journal: Journal) -> list[FillRow]:
    """Every journaled fill, in the order it was journaled, with its order's and signal's facts
    (each signal's payload parsed once)."""
    payloads: dict[int, tuple[Decimal | None, datetime | None]] = {}
    rows = []
    for r in journal.conn.execute(_FILLS):
        signal_price, alert_at = None, None
        if r["signal_id"] is not None:
            if r["signal_id"] not in payloads:
                payloads[r["signal_id"]] = _timing(r["payload"])
            signal_price, alert_at = payloads[r["signal_id"]]
        rows.append(
            FillRow(
                id=r["id"],
                order_id=r["order_id"],
                account=r["account"],
                ticker=r["ticker"],
                side=r["side"],
                quantity=Decimal(r["quantity"]),
                price=Decimal(r["price"]),
                filled_at=_moment(r["filled_at"]),
                fee=Decimal(r["fee"]) if r["fee"] is not None else None,
                fee_currency=r["fee_currency"],
                role=r["role"],
                submitted_at=_moment(r["submitted_at"]) if r["submitted_at"] else None,
                subscription=r["subscription"],
                strategy=r["strategy"],
                received_at=_moment(r["received_at"]) if r["received_at"] else None,
                signal_price=signal_price,
                alert_at=alert_at,
            )
        )
    return rows


def _timing(payload: str | None) -> tuple[Decimal | None, datetime | None]:
    """A signal's `signalPrice` and `time` as its normalised payload has them."""
    values: dict[str, Any] = json.loads(payload) if payload else {}
    price = values.get("signalPrice")
    sent = values.get("time")
    return (
        Decimal(price) if isinstance(price, str) else None,
        _moment(sent) if isinstance(sent, str) else None,
    )


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:  # the journal writes aware times; an old row is UTC
        moment = moment.replace(tzinfo=UTC)
    return moment


def last_marks(journal: Journal) -> dict[tuple[str, str], tuple[Decimal, str]]:
    """The last price known per (account, ticker), and where it comes from: the paper broker's
    mark, else the ticker's last fill (the journal keeps no live broker's quotes)."""
    marks: dict[tuple[str, str], tuple[Decimal, str]] = {}
    for r in journal.conn.execute(
        "SELECT account, ticker, price FROM fills WHERE id IN"
        " (SELECT max(id) FROM fills GROUP BY account, ticker)"
    ):
        marks[(r["account"], r["ticker"])] = (Decimal(r["price"]), "last fill")
    for r in journal.conn.execute("SELECT account, ticker, price FROM paper_marks"):
        marks[(r["account"], r["ticker"])] = (Decimal(r["price"]), "paper mark")
    return marks


def equity_series(journal: Journal) -> dict[str, list[tuple[datetime, Decimal]]]:
    """Each account's equity snapshots (SPEC §13), oldest first."""
    series: dict[str, list[tuple[datetime, Decimal]]] = {}
    for r in journal.conn.execute(
        "SELECT account, equity, taken_at FROM equity_snapshots ORDER BY taken_at, id"
    ):
        series.setdefault(r["account"], []).append((_moment(r["taken_at"]), Decimal(r["equity"])))
    return series
