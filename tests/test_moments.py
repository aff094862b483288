"""`--since` / `--until` values: dates, ISO datetimes and spans back from now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tradepipe.core.moments import parse_moment

NOW = datetime(2026, 12, 4, 18, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T14:30", datetime(2026, 12, 1, 14, 30, tzinfo=UTC)),
        ("2026-12-01T14:30:00+01:00", datetime(2026, 12, 1, 13, 30, tzinfo=UTC)),
        ("2026-12-01 14:30Z", datetime(2026, 12, 1, 14, 30, tzinfo=UTC)),
        ("today", datetime(2026, 12, 4, tzinfo=UTC)),
        ("Yesterday", datetime(2026, 12, 3, tzinfo=UTC)),
        ("30m", NOW - timedelta(minutes=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
    ],
)
def test_moments_people_type(text, moment) -> None:
    assert parse_moment(text, NOW) == moment
    assert parse_moment(text, NOW).tzinfo is not None


def test_now_in_another_zone_still_gives_utc_midnight() -> None:
    evening = NOW.astimezone(timezone(timedelta(hours=-8)))  # 10:30 on the 4th there
    assert parse_moment("today", evening) == datetime(2026, 12, 4, tzinfo=UTC)


@pytest.mark.parametrize("text", ["last week", "7x", "2026-13-01", "", "-3d"])
def test_anything_else_names_the_forms(text) -> None:
    with pytest.raises(ValueError, match="is not a moment: give a date"):
        parse_moment(text, NOW)
