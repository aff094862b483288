"""Notifications (SPEC §14) as decisions: the kinds, which a target takes by default, when a
failed send is tried again and when it is given up, and how a burst of one kind becomes one
message. Pure: times are arguments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tradepipe.core.report import Figures


class NotifyKind(StrEnum):
    """What a notification is about (SPEC §14); a `[[notify]]` target picks its kinds."""

    FAILURE = "failure"  # a signal rejected at the webhook, a delivery rejected or failed
    RISK = "risk"  # a trip, a halt, a resume
    BROKER = "broker"  # an account down, back up, or out of step with the journal
    APPROVAL = "approval"  # a delivery waits, with the command that approves it
    FILL = "fill"
    DAILY = "daily"
    SILENCE = "silence"  # a strategy heard nothing for `silence_alert` seconds
    TEST = "test"  # `tradepipe notify test`: every target, whatever its kinds


# Journal a notification (kind, subject, text) inside the caller's transaction; answers the rows
# written. The engine's Notifier.notify; any component that finds a cause is handed one.
Notify = Callable[["NotifyKind", str, str], int]


def no_notify(kind: NotifyKind, subject: str, text: str) -> int:
    return 0


# A target without `events` takes every kind but fills (one per order would drown the rest).
DEFAULT_KINDS = frozenset(NotifyKind) - {NotifyKind.FILL, NotifyKind.TEST}

# The first message of a kind goes out at once; the rest within this window are merged.
COALESCE_WINDOW = timedelta(seconds=60)
# A send that keeps failing is tried again for this long after its cause, then given up.
GIVE_UP_AFTER = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=10)
LONGEST_RETRY = timedelta(minutes=30)
# A merged message lists at most this many of its notifications, then says how many more.
MERGED_LINES = 10

_TITLES = {
    NotifyKind.FAILURE: "failure",
    NotifyKind.RISK: "risk",
    NotifyKind.BROKER: "broker",
    NotifyKind.APPROVAL: "waiting for approval",
    NotifyKind.FILL: "fill",
    NotifyKind.DAILY: "daily summary",
    NotifyKind.SILENCE: "silence",
    NotifyKind.TEST: "test",
}


@dataclass(frozen=True, slots=True)
class Note:
    """One journaled notification, as the sender reads it."""

    id: int
    kind: NotifyKind
    subject: str
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Message:
    """What one send carries: one notification, or a burst of one kind merged."""

    title: str
    body: str
    ids: tuple[int, ...]


def retry_delay(attempts: int) -> timedelta:
    """How long after its `attempts`-th failed send a notification is tried again: 10 s,
    doubling, at most 30 min."""
    delay = FIRST_RETRY * (2 ** max(attempts - 1, 0))
    return min(delay, LONGEST_RETRY)


def next_attempt(created_at: datetime, attempts: int, now: datetime) -> datetime | None:
    """When to try again after `attempts` failed sends, or None: give it up (24 h since its
    cause have passed, or would have by then)."""
    due = now + retry_delay(attempts)
    return None if due - created_at > GIVE_UP_AFTER else due


def hold_until(last_sent_at: datetime | None, now: datetime) -> datetime | None:
    """A kind sent less than a minute ago waits for the minute to end (then goes as one
    merged message); None: send now."""
    if last_sent_at is None or now - last_sent_at >= COALESCE_WINDOW:
        return None
    return last_sent_at + COALESCE_WINDOW


def merge(kind: NotifyKind, notes: Sequence[Note]) -> Message:
    """One message for a burst of notifications of one kind, oldest first."""
    if not notes:
        raise ValueError("nothing to merge")
    title = f"tradepipe: {_TITLES[kind]}"
    ids = tuple(n.id for n in notes)
    if len(notes) == 1:
        return Message(f"{title}: {notes[0].subject}", notes[0].text, ids)
    lines = [f"- {n.text}" for n in notes[:MERGED_LINES]]
    if len(notes) > MERGED_LINES:
        lines.append(f"- … and {len(notes) - MERGED_LINES} more (tradepipe signals)")
    body = f"{len(notes)} {_TITLES[kind]} notifications:\n" + "\n".join(lines)
    return Message(f"{title} ({len(notes)})", body, ids)


def silence_due(last_heard_at: datetime, alerted: bool, after: timedelta, now: datetime) -> bool:
    """A strategy heard nothing for `after`: alert once (re-armed by its next signal)."""
    return not alerted and now - last_heard_at >= after


def daily_text(
    account: str,
    since: datetime,
    until: datetime,
    total: Figures,
    fills: int,
    equity: tuple[Decimal, Decimal] | None,
    in_force: Sequence[str] = (),
) -> str:
    """The daily summary of one account (SPEC §14): its day [since, until) — round trips closed,
    realized P&L net of fees, what is open at the last marks, fills, equity from the day's
    first snapshot to its last — and the trading states still in force."""
    day = f"{_minute(since)} to {_minute(until)}"
    if total.trades:
        won = f"{total.wins} won, {total.losses} lost"
        lines = [
            f"{account}, {day}: {total.trades} round trip{'s' * (total.trades != 1)} closed"
            f" ({won}), realized {_money(total.realized, signed=True)}"
            f" net of {_money(total.fees)} fees"
        ]
    else:
        lines = [f"{account}, {day}: no round trip closed"]
    lines.append(f"fills: {fills}")
    if total.open_quantity or total.unrealized:
        lines.append(f"open: unrealized {_money(total.unrealized, signed=True)} at the last marks")
    if equity is not None:
        first, last = equity
        lines.append(
            f"equity: {_money(last)} ({_money(last - first, signed=True)} since {_money(first)})"
        )
    lines.extend(f"in force: {state}" for state in in_force)
    return "\n".join(lines)


def _minute(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M %Z").strip()


def _money(value: Decimal, *, signed: bool = False) -> str:
    text = f"{value:,.2f}"
    return f"+{text}" if signed and value > 0 else text
