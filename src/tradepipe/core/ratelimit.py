"""Per-strategy rate limits: a sliding window per minute and per hour (SPEC §3: 60/min, 500/h).

Pure: the caller passes the monotonic time.
"""

from __future__ import annotations

from collections import deque


class RateLimiter:
    def __init__(self, per_minute: int, per_hour: int) -> None:
        self.per_minute = per_minute
        self.per_hour = per_hour
        self._hits: deque[float] = deque()

    def allow(self, now: float) -> str | None:
        """Record a request at `now`; None if allowed, else which limit it broke."""
        hits = self._hits
        while hits and hits[0] <= now - 3600:
            hits.popleft()
        if len(hits) >= self.per_hour:
            return f"more than {self.per_hour} signals in an hour"
        recent = len(hits) - _first_after(hits, now - 60)
        if recent >= self.per_minute:
            return f"more than {self.per_minute} signals in a minute"
        hits.append(now)
        return None


def _first_after(hits: deque[float], since: float) -> int:
    """Index of the first hit newer than `since` (hits are in time order)."""
    low, high = 0, len(hits)
    while low < high:
        middle = (low + high) // 2
        if hits[middle] <= since:
            low = middle + 1
        else:
            high = middle
    return low
