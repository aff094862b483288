"""Reconciliation (SPEC §11): the journal's view of an account against the broker's.

Pure. The engine gathers both views for one account + ticker (inside its lane, so none of our
own deliveries is half-way), asks which journal-open orders the broker no longer lists (to
look them up by id), and compares what is left: orders the journal does not know, orders it
holds as done that the broker still works, and the position. A position that differs blocks
new entries on that ticker until they agree again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradepipe.core.model import FINAL_ORDER, WORKING_ORDER, OrderState

# Journal statuses of an order the broker should list as open, and of one it should no longer
# list. Plain strings: the journal spells them into its SQL.
WORKING = frozenset(status.value for status in WORKING_ORDER)
DONE = frozenset(status.value for status in FINAL_ORDER)


@dataclass(frozen=True, slots=True)
class Difference:
    # "order" (the journal was behind), "foreign-order", "still-open" (the journal has it
    # done, the broker still works it), "position"
    kind: str
    account: str
    ticker: str
    subject: str
    journal: str
    broker: str

    def describe(self) -> str:
        what = {
            "order": f"order {self.subject}",
            "foreign-order": f"order {self.subject} not placed by tradepipe",
            "still-open": f"order {self.subject} still open at the broker",
            "position": f"position {self.ticker}",
        }[self.kind]
        return f"{self.account} {what}: journal {self.journal}, broker {self.broker}"

    @property
    def blocks_entries(self) -> bool:
        return self.kind == "position"


def orders_to_look_up(
    journal_orders: Iterable[Mapping[str, Any]], broker_open: Iterable[OrderState]
) -> list[str]:
    """Orders the journal thinks are working but the broker no longer lists as open: they were
    filled, canceled or expired while we were not looking."""
    listed = {o.client_order_id for o in broker_open}
    return [
        o["client_order_id"]
        for o in journal_orders
        if o["status"] in WORKING and o["client_order_id"] not in listed
    ]


def foreign_orders(
    account: str,
    ticker: str,
    broker_open: Iterable[OrderState],
    known: Iterable[str],
) -> list[Difference]:
    """Open orders at the broker that tradepipe never placed (by hand, another tool)."""
    ours = set(known)
    return [
        Difference("foreign-order", account, ticker, o.client_order_id, "none", str(o.status))
        for o in broker_open
        if o.client_order_id not in ours
    ]


def position_drift(
    account: str, ticker: str, journal: Decimal, broker: Decimal
) -> list[Difference]:
    if journal == broker:
        return []
    return [Difference("position", account, ticker, ticker, _show(journal), _show(broker))]


def _show(quantity: Decimal) -> str:
    return format(quantity.normalize(), "f") if quantity else "0"


def still_open(
    account: str,
    ticker: str,
    broker_open: Iterable[OrderState],
    journaled: Mapping[str, Mapping[str, Any]],
) -> list[Difference]:
    """Orders the journal holds as done (filled, canceled, rejected, expired) that the broker
    still lists as working. Reported, not written back: the broker is the truth for what is
    working, and its next event or a lookup settles the journal. An order whose fills cover
    the quantity sent is filled whatever the broker lists (`OrderState.against`)."""
    found = []
    for order in broker_open:
        row = journaled.get(order.client_order_id)
        if row is None or row["status"] not in DONE:
            continue
        quantity = Decimal(row["quantity"])
        if order.against(quantity).status.is_final or order.filled_quantity >= quantity > 0:
            continue
        found.append(
            Difference(
                "still-open",
                account,
                ticker,
                order.client_order_id,
                row["status"],
                str(order.status),
            )
        )
    return found
