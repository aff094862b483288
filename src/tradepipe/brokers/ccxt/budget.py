"""The request weight an exchange lets one client spend: a token bucket that refills with the
time passed, idle time included, and never spends more than the exchange's budget per window.

Why not ccxt's own (`enableRateLimit`'s async `Throttler`): it refills only while a request
waits in its queue, never while the process is idle (https://github.com/ccxt/ccxt/issues/25556),
and holds one token. In a daemon that sends a few requests now and then, each request waited
out the whole cost of the one before, however long ago that was sent: 0.2–0.8 s at Binance after
a balance or an all-markets open-orders call. Pure: the caller passes the monotonic time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Binance counts request weight per IP per calendar minute: 6,000, which is ccxt's `rateLimit` of
# 50 ms per cost unit of 5 weight (https://developers.binance.com/docs/binance-spot-api-docs/
# rest-api/limits; 429 past it, then a 418 IP ban for a client that keeps sending). A burst of
# 5% of it covers an order's lookup, create and trades and a reconcile's balance and all-markets
# open orders without waiting; the rest refills over the minute.
WINDOW_SECONDS = 60.0
BURST_SHARE = 0.05


@dataclass(slots=True)
class RequestBudget:
    """Cost units (ccxt's per-endpoint `cost`) refilled at `per_second`, held up to `capacity`.

    A request may be sent when the bucket holds its cost; requests that find it short queue
    behind each other (each reserves its cost when it asks). Over any `t` seconds the requests
    sent cost at most `capacity + per_second * t`."""

    per_second: float
    capacity: float
    tokens: float = field(init=False)
    updated_at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.capacity < 0:
            raise ValueError(
                f"request budget: rate {self.per_second}/s must be positive and capacity"
                f" {self.capacity} not negative"
            )
        self.tokens = self.capacity

    @classmethod
    def per_window(
        cls, budget: float, window: float = WINDOW_SECONDS, burst_share: float = BURST_SHARE
    ) -> RequestBudget:
        """A bucket that never spends more than `budget` in any `window` seconds: its burst
        plus what it refills in one window is the budget."""
        capacity = budget * burst_share
        return cls(per_second=(budget - capacity) / window, capacity=capacity)

    @classmethod
    def of_ccxt_rate_limit(cls, rate_limit_ms: float) -> RequestBudget:
        """The budget ccxt's `rateLimit` (milliseconds per cost unit) allows per window."""
        if rate_limit_ms <= 0:
            raise ValueError(f"ccxt rateLimit {rate_limit_ms} ms must be positive")
        return cls.per_window(WINDOW_SECONDS * 1000 / rate_limit_ms)

    def reserve(self, cost: float, now: float) -> float:
        """Charge one request of `cost` asked at `now` (seconds, monotonic): the seconds it must
        wait before it is sent (0.0: at once)."""
        if self.updated_at is not None:
            idle = max(0.0, now - self.updated_at)
            self.tokens = min(self.capacity, self.tokens + idle * self.per_second)
        self.updated_at = now if self.updated_at is None else max(self.updated_at, now)
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.per_second
