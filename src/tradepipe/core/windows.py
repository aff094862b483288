"""Trading windows: when a subscription may enter, in the window's own IANA time zone.

Pure: the moment is an argument. A window whose start is after its end crosses midnight (which
TradersPost cannot do); its session belongs to the day it starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_WEEK = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NAMES = {name[:n]: i for i, name in enumerate(_WEEK) for n in (3, len(name))}


def parse_days(days: str) -> frozenset[int]:
    """ "mon-fri", "mon,wed,fri", "fri-mon" (wraps) → weekday numbers, Monday = 0."""
    result: set[int] = set()
    for part in days.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in _DAY_NAMES or (last and last not in _DAY_NAMES):
            raise ValueError(f'"{days}" must be days like "mon-fri" or "mon,wed,fri" (mon … sun)')
        start, end = _DAY_NAMES[first], _DAY_NAMES[last or first]
        result.update((start + i) % 7 for i in range((end - start) % 7 + 1))
    return frozenset(result)


def parse_minutes(value: str, allow_24: bool = False) -> int:
    """ "HH:MM" → minutes after midnight; "24:00" only where `allow_24` (a window's end)."""
    match = _TIME.fullmatch(value)
    minutes = int(match[1]) * 60 + int(match[2]) if match and int(match[2]) < 60 else -1
    if not 0 <= minutes < 24 * 60 + allow_24:
        latest = "24:00" if allow_24 else "23:59"
        raise ValueError(f'"{value}" must be a time "HH:MM" from 00:00 to {latest}')
    return minutes


@dataclass(frozen=True, slots=True)
class Window:
    days: str
    start: str
    end: str  # exclusive; "24:00" is the end of the day
    tz: str

    @classmethod
    def of(cls, setting: Mapping[str, Any] | Any) -> Window:
        get: Callable[[str], Any] = (
            setting.get if isinstance(setting, Mapping) else lambda k: getattr(setting, k)
        )
        return cls(days=get("days"), start=get("start"), end=get("end"), tz=get("tz"))

    def is_open_at(self, moment: datetime) -> bool:
        """Whether the aware datetime `moment` falls inside this window."""
        local = moment.astimezone(ZoneInfo(self.tz))
        now = local.hour * 60 + local.minute
        start, end = parse_minutes(self.start), parse_minutes(self.end, allow_24=True)
        day, days = local.weekday(), parse_days(self.days)
        if start < end:
            return day in days and start <= now < end
        if now >= start:
            return day in days
        return now < end and (day - 1) % 7 in days

    def __str__(self) -> str:
        return f"{self.days} {self.start}–{self.end} {self.tz}"


def outside_windows(windows: Iterable[Window], moment: datetime) -> str | None:
    """None when `moment` is inside a window (or there are none); else the reason to skip."""
    windows = list(windows)
    if not windows or any(w.is_open_at(moment) for w in windows):
        return None
    listed = "; ".join(str(w) for w in windows)
    return f"outside the trading windows ({listed}) at {moment.isoformat(timespec='seconds')}"
