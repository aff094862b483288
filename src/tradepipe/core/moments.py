"""A moment as a person types it on the command line (`--since`, `--until`): a date, an ISO
datetime, or a span back from now (`7d`). Pure: now is an argument."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_SPAN = re.compile(r"^(?P<count>\d+)\s*(?P<unit>[mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
FORMS = "a date (2026-12-01), an ISO datetime (2026-12-01T14:30, UTC unless it says), today,"
FORMS += " yesterday, or a span back from now: 30m, 12h, 7d, 2w"


def parse_moment(text: str, now: datetime) -> datetime:
    """`text` as an aware UTC datetime; a date is its midnight (UTC). ValueError names the
    forms it takes."""
    word = text.strip().lower()
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if word == "today":
        return midnight
    if word == "yesterday":
        return midnight - timedelta(days=1)
    if match := _SPAN.match(word):
        return now - timedelta(**{_UNITS[match["unit"]]: int(match["count"])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f'"{text}" is not a moment: give {FORMS}') from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
