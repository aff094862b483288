"""What an emulated bracket (SPEC §8) needs next, decided from the journal's rows alone.

A broker without native brackets gets tradepipe's emulation: the take-profit and the stop-loss
are held until their entry fills, then placed for the quantity filled; when one of them fills,
the other is canceled. Between those two moments one of them may fill in part. The other then
still rests for the whole quantity and, should it trigger, would sell more than the position
holds (the account flips short, or a broker that checks refuses the sale). So every working
child is kept to what its bracket still holds: the entry's fill less every fill of its
siblings. A child that would exceed it is resized: a new order (`resized_id`) for what is held
takes its place, and the old one is canceled before the new one is sent.

Pure: the rows arrive as arguments (journal rows: text quantities, status words).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from tradepipe.core.ids import MAX_LENGTH, base36
from tradepipe.core.model import LIVE_ORDER, WORKING_ORDER, OrderStatus

Row = Mapping[str, Any]
_COUNT = re.compile(r"[0-9a-z]*")  # base 36, as `tradepipe.core.ids.base36` writes it

# A child at the broker that may still fill, and so may need to shrink.
WORKING = WORKING_ORDER
# Not done with: what the journal's bracket_children lists.
LIVE = LIVE_ORDER
UNSENT = frozenset({OrderStatus.HELD, OrderStatus.SUBMITTING})
# The journal columns a resized child's new order keeps of the child it takes the place of.
# Final: its names keep their literal types, so a name that is no column is a type error.
KEPT_BY_RESIZE: Final = (
    "delivery_id",
    "signal_id",
    "subscription",
    "account",
    "ticker",
    "side",
    "order_type",
    "limit_price",
    "stop_price",
    "trail_amount",
    "trail_percent",
    "time_in_force",
    "role",
    "extended_hours",
    "parent_id",
)


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do now."""

    why: str


@dataclass(frozen=True, slots=True)
class Drop:
    """The child never reached the broker and never will: journal it canceled."""

    why: str


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the child at the broker."""

    why: str


@dataclass(frozen=True, slots=True)
class Place:
    """Send the unsent child for `quantity` (what its bracket holds)."""

    quantity: Decimal


@dataclass(frozen=True, slots=True)
class Resize:
    """Put a new order `client_order_id` for `quantity` in the child's place."""

    client_order_id: str
    quantity: Decimal


Step = Wait | Drop | Cancel | Place | Resize


def resized_id(client_id: str) -> str:
    """The id of the order that takes a child's place when it shrinks: the child's id with
    `R` and a count (`…-s` → `…-sR1` → `…-sR2`). Deterministic, so a restart finds it by id;
    capital R never appears in `tradepipe.core.ids.client_order_id`'s ids, so it collides with
    none."""
    identifier = _next_id(client_id)
    if identifier is None:
        raise ValueError(f"client order id {client_id!r} is not a bracket leg's")
    if len(identifier) > MAX_LENGTH:
        raise ValueError(f"client order id {identifier!r} breaks the 32-character rule")
    return identifier


def _next_id(client_id: str) -> str | None:
    prefix, _, suffix = client_id.rpartition("-")
    leg, _, count = suffix.partition("R")
    if not prefix or not leg or _COUNT.fullmatch(count) is None:
        return None
    return f"{prefix}-{leg}R{base36(int(count, 36) + 1 if count else 1)}"


def is_resize(child: Row) -> bool:
    """Whether the child took another child's place by `Resize` (not a breakeven's replace,
    which its own delivery carries out)."""
    replaces = child.get("replaces")
    return isinstance(replaces, str) and child["client_order_id"] == _next_id(replaces)


def fills_a_child(row: Row, filled: Decimal) -> bool:
    """Whether a broker's answer (`filled`) is a new fill of the bracket child journaled as
    `row`: even in part, its sibling may now rest for more than the position holds."""
    return row["parent_id"] is not None and filled > Decimal(row["filled_quantity"])


def next_step(entry: Row, child: Row, siblings: Sequence[Row], *, closable: Decimal) -> Step:
    """What the live bracket child `child` of `entry` needs now; `siblings` are the entry's
    other children, in any state (a canceled one's fills still count). `closable`: what the
    account's position in the ticker lets this child close now (the long for a sell, the short
    for a buy; 0 when flat or on the other side). A child never rests, nor is placed, for more:
    whatever closed the position without the bracket (a flatten, an exit signal, a reversal)
    leaves it nothing to protect."""
    status = OrderStatus(child["status"])
    winner = next((s for s in siblings if s["status"] == OrderStatus.FILLED), None)
    if winner is not None:
        why = f"one-cancels-other: {winner['client_order_id']} filled"
        return Drop(why) if status is OrderStatus.HELD else Cancel(why)
    for successor in (s for s in siblings if s.get("replaces") == child["client_order_id"]):
        step = _replaced(child, status, successor)
        if step is not None:
            return step
    filled = Decimal(entry["filled_quantity"])
    held = filled - sum((Decimal(s["filled_quantity"]) for s in siblings), Decimal(0))
    held = min(held - Decimal(child["filled_quantity"]), max(closable, Decimal(0)))
    if status in UNSENT:
        return _unsent(entry, child, siblings, held)
    if status not in WORKING:
        return Wait(f"{status}: settled by looking it up")
    if held <= 0:
        return Cancel(
            f"one-cancels-other: nothing left to close (entry {_show(filled)}, siblings'"
            f" fills and the position {_show(closable)} counted)"
        )
    if Decimal(child["quantity"]) - Decimal(child["filled_quantity"]) > held:
        return Resize(resized_id(child["client_order_id"]), held)
    return Wait("rests for what the bracket holds")


def _replaced(child: Row, status: OrderStatus, successor: Row) -> Step | None:
    """The step for a child another order takes the place of: its resize, or a breakeven that
    moved it. None if that other order never took it (a refused or never-sent move)."""
    name = successor["client_order_id"]
    if is_resize(successor):
        why = f"resized: {name} takes its place"
        if status is OrderStatus.HELD:
            return Drop(why)
        if status is OrderStatus.UNKNOWN:
            return Wait(f"of unknown state: {name} waits for its end")
        return Cancel(why)
    moved = OrderStatus(successor["status"])
    if moved in (OrderStatus.SUBMITTING, OrderStatus.UNKNOWN):
        # A move in flight, or one whose answer was lost: until its fate is known this child
        # may be gone or still resting, so it is neither resized nor placed.
        return Wait(f"{name} moves it, and its fate is not known yet")
    if moved in WORKING or moved is OrderStatus.FILLED:
        if status in (OrderStatus.UNKNOWN, OrderStatus.HELD, OrderStatus.SUBMITTING):
            return Wait(f"moved by {name}: settled by looking it up")
        # The broker took the move: this child ended there (a modification in place leaves
        # its old id unknown to IB), though the answer saying so may have been lost.
        return Cancel(f"replaced by {name}")
    return None  # the move was refused or never sent: the child stands


def _unsent(entry: Row, child: Row, siblings: Sequence[Row], held: Decimal) -> Step:
    if child.get("replaces") and not is_resize(child):
        return Wait("a breakeven stop: its delivery replaces the stop it moves")
    if is_resize(child):
        before = next((s for s in siblings if s["client_order_id"] == child["replaces"]), None)
        if before is not None and OrderStatus(before["status"]) in LIVE:
            return Wait(f"{before['client_order_id']} must end before it is sent")
    entry_status = OrderStatus(entry["status"])
    if not entry_status.is_final:
        return Wait("its entry still works (a partial fill waits for the rest)")
    if Decimal(entry["filled_quantity"]) <= 0:
        return Drop(f"not placed: its entry was {entry_status} without a fill")
    if held <= 0:
        return Drop("not placed: its siblings' fills, or another order, closed the position")
    return Place(held)


def _show(quantity: Decimal) -> str:
    return f"{quantity.normalize():f}"
