"""Notifications (SPEC §14) as decisions: the kinds, which a target takes by default, when a
failed send is tried again and when it is given up, and how a burst of one kind becomes one
message. Pure: times are arguments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


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
