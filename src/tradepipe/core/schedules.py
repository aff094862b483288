"""Scheduled work (SPEC §13): a delivery postponed by the signal's `delay`, the cancel of an
order left unfilled `cancel_after` seconds, a subscription's daily `flatten_at`.

Pure: the moment is an argument. The journal holds each item (the truth); the engine's timer only
wakes the engine. The decisions here: when a `flatten_at` fires next, and whether an item that
comes due now is still on time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

# A delayed delivery or a flatten_at firing later than this is missed, never run late.
GRACE = timedelta(seconds=60)
# The longest `delay` a signal may ask for, in seconds (SPEC §13).
MAX_DELAY = 3600


class ScheduleKind(StrEnum):
    DELAY = "delay"
    CANCEL_AFTER = "cancel_after"
    FLATTEN_AT = "flatten_at"


class ScheduleStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    # Its time passed by more than GRACE while tradepipe could not run it: not run late.
    MISSED = "missed"
    # No longer wanted (a reload changed flatten_at; the delivery was handled otherwise).
    CANCELED = "canceled"


def next_firing(after: datetime, minutes: int, weekdays: frozenset[int], tz: str) -> datetime:
    """The first moment strictly after `after` (aware) at local time `minutes` after midnight
    on one of `weekdays` (Monday = 0) in the IANA zone `tz`; answered in UTC.

    Daylight saving: a local time the spring-forward gap skips (02:30 in New York on the second
    Sunday of March) fires at its equivalent after the shift (03:30 local, the same UTC instant
    as 02:30 standard time); a local time the fall-back hour repeats fires once, at its first
    occurrence."""
    if after.tzinfo is None:
        raise ValueError(f"{after} has no time zone: flatten_at firings are aware")
    if not weekdays:
        raise ValueError("flatten_at needs at least one weekday")
    zone = ZoneInfo(tz)
    day = after.astimezone(zone).date() - timedelta(days=1)  # a gap may push a firing back
    hour, minute = divmod(minutes, 60)
    for _ in range(9):  # one week ahead and the day before always hold a listed weekday
        if day.weekday() in weekdays:
            local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone, fold=0)
            moment = local.astimezone(UTC)
            if moment > after:
                return moment
        day += timedelta(days=1)
    raise AssertionError("unreachable: a listed weekday comes within a week")  # pragma: no cover


def late_by(due_at: datetime, now: datetime) -> int | None:
    """Whole seconds an item due at `due_at` is past its time at `now`, when that is more than
    GRACE (it is then missed); None while it is on time."""
    late = now - due_at
    return int(late.total_seconds()) if late > GRACE else None


def missed_reason(seconds: int) -> str:
    return f"missed its time by {seconds} s (more than {int(GRACE.total_seconds())} s late)"


def seconds_text(seconds: Decimal) -> str:
    """30 → "30", 1.50 → "1.5": seconds as a person writes them."""
    normal = seconds.normalize()
    return format(normal, "f") if normal == normal.to_integral() else str(normal)
