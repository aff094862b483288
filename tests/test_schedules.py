"""SPEC §13's schedules, the pure decisions: when a flatten_at fires next (weekends, lists of
days, daylight saving in the subscription's zone) and when an item due is missed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepipe.core.schedules import late_by, missed_reason, next_firing, seconds_text
from tradepipe.core.windows import parse_days, parse_minutes

NY = "America/New_York"


def at(text: str) -> datetime:
    """ "2026-12-02 14:00" in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# (id, after, time, days, tz, the next firing in UTC)
FIRINGS = [
    ("before-the-time-same-day", "2026-12-02 14:00", "15:55", "mon-fri", NY, "2026-12-02 20:55"),
    ("after-the-time-next-day", "2026-12-02 21:00", "15:55", "mon-fri", NY, "2026-12-03 20:55"),
    (
        "exactly-at-the-time-is-the-next",
        "2026-12-02 20:55",
        "15:55",
        "mon-fri",
        NY,
        "2026-12-03 20:55",
    ),
    ("friday-evening-to-monday", "2026-12-04 21:00", "15:55", "mon-fri", NY, "2026-12-07 20:55"),
    ("saturday-to-monday", "2026-12-05 12:00", "15:55", "mon-fri", NY, "2026-12-07 20:55"),
    (
        "sunday-night-utc-is-still-sunday-in-ny",
        "2026-12-07 03:00",
        "15:55",
        "mon-fri",
        NY,
        "2026-12-07 20:55",
    ),
    ("a-list-of-days", "2026-12-02 21:00", "09:00", "mon,wed,fri", "UTC", "2026-12-04 09:00"),
    (
        "a-list-of-days-wraps-the-week",
        "2026-12-04 10:00",
        "09:00",
        "mon,wed,fri",
        "UTC",
        "2026-12-07 09:00",
    ),
    ("days-that-wrap-fri-mon", "2026-12-02 10:00", "09:00", "fri-mon", "UTC", "2026-12-04 09:00"),
    (
        "days-that-wrap-include-sunday",
        "2026-12-05 10:00",
        "09:00",
        "fri-mon",
        "UTC",
        "2026-12-06 09:00",
    ),
    ("one-day-a-week", "2026-12-02 10:00", "23:59", "tue", "UTC", "2026-12-08 23:59"),
    ("midnight", "2026-12-02 10:00", "00:00", "mon-sun", "UTC", "2026-12-03 00:00"),
    (
        "a-half-hour-zone",
        "2026-12-02 10:00",
        "15:20",
        "mon-fri",
        "Asia/Kolkata",
        "2026-12-03 09:50",
    ),
    (
        "east-of-utc-the-local-day-is-ahead",
        "2026-12-04 23:00",
        "08:00",
        "sat",
        "Asia/Tokyo",
        "2026-12-11 23:00",
    ),
    # New York leaves standard time on Sunday 2026-03-08: 15:55 is 20:55 UTC before, 19:55 after.
    ("dst-starts-over-the-weekend", "2026-03-06 21:00", "15:55", "mon-fri", NY, "2026-03-09 19:55"),
    ("dst-the-friday-before", "2026-03-06 12:00", "15:55", "mon-fri", NY, "2026-03-06 20:55"),
    # ...and goes back on Sunday 2026-11-01: 19:55 UTC on the Friday, 20:55 on the Monday.
    ("dst-ends-over-the-weekend", "2026-10-30 21:00", "15:55", "mon-fri", NY, "2026-11-02 20:55"),
    ("dst-ends-the-friday-before", "2026-10-30 12:00", "15:55", "mon-fri", NY, "2026-10-30 19:55"),
    # 02:30 does not exist in New York on 2026-03-08: it fires at 03:30 EDT (07:30 UTC).
    ("a-time-the-spring-gap-skips", "2026-03-08 00:00", "02:30", "mon-sun", NY, "2026-03-08 07:30"),
    # 01:30 happens twice on 2026-11-01: once only, the first time (EDT, 05:30 UTC)...
    (
        "a-time-fall-back-repeats-fires-first",
        "2026-11-01 00:00",
        "01:30",
        "mon-sun",
        NY,
        "2026-11-01 05:30",
    ),
    # ...and not again an hour later: the next is Monday's (EST, 06:30 UTC).
    (
        "a-time-fall-back-repeats-fires-once",
        "2026-11-01 05:30",
        "01:30",
        "mon-sun",
        NY,
        "2026-11-02 06:30",
    ),
    (
        "london-summer-time",
        "2026-06-01 10:00",
        "16:30",
        "mon-fri",
        "Europe/London",
        "2026-06-01 15:30",
    ),
]


@pytest.mark.parametrize(
    ("after", "time", "days", "tz", "expected"),
    [case[1:] for case in FIRINGS],
    ids=[case[0] for case in FIRINGS],
)
def test_next_firing(after, time, days, tz, expected):
    found = next_firing(at(after), parse_minutes(time), parse_days(days), tz)
    assert found == at(expected)
    assert found.tzinfo is UTC


def test_next_firing_takes_any_aware_moment_and_refuses_a_naive_one():
    in_tokyo = utc(2026, 12, 2, 14).astimezone(ZoneInfo("Asia/Tokyo"))
    assert next_firing(in_tokyo, 15 * 60 + 55, parse_days("mon-fri"), NY) == utc(
        2026, 12, 2, 20, 55
    )
    with pytest.raises(ValueError, match="no time zone"):
        next_firing(datetime(2026, 12, 2, 14), 0, parse_days("mon"), "UTC")


ZONES = ["UTC", NY, "Europe/London", "Australia/Sydney", "Asia/Kolkata", "America/Sao_Paulo"]


@given(
    after=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(0, 24 * 60 - 1),
    days=st.frozensets(st.integers(0, 6), min_size=1),
    tz=st.sampled_from(ZONES),
)
def test_next_firing_is_the_first_listed_day_at_the_time_after_the_moment(after, minutes, days, tz):
    found = next_firing(after, minutes, days, tz)
    assert after < found <= after + timedelta(days=8)
    local = found.astimezone(ZoneInfo(tz))
    # On a listed day, at the time (or an hour on, where the spring gap skipped the time).
    assert local.weekday() in days
    assert (local.hour * 60 + local.minute - minutes) % (24 * 60) in (0, 60)
    # None is skipped: from any moment before it, the next firing is still this one.
    middle = after + (found - after) / 2
    assert next_firing(middle, minutes, days, tz) == found
    assert next_firing(found - timedelta(microseconds=1), minutes, days, tz) == found


# (seconds past the due time, missed by) — 60 s late is still on time, 61 s is missed.
LATENESS = [(-30, None), (0, None), (59.9, None), (60, None), (61, 61), (3600, 3600)]


@pytest.mark.parametrize(("late", "missed"), LATENESS)
def test_late_by_counts_only_past_the_grace(late, missed):
    due = utc(2026, 12, 4, 15)
    assert late_by(due, due + timedelta(seconds=late)) == missed


def test_the_missed_reason_names_the_seconds_and_the_grace():
    assert missed_reason(75) == "missed its time by 75 s (more than 60 s late)"


@pytest.mark.parametrize(
    ("seconds", "shown"), [(Decimal(30), "30"), (Decimal("1.50"), "1.5"), (Decimal("3E+3"), "3000")]
)
def test_seconds_text(seconds, shown):
    assert seconds_text(seconds) == shown
