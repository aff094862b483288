"""TradingView's continuous futures tickers (`ES1!`, `MNQ2!`) mapped to a dated contract
(SPEC §15), as TradersPost maps them: the front contract by expiry, rolling to the next one
`roll_days_before_expiry` calendar days (default 2) before the front one expires. `ES2!` is the
contract after the front one.

Pure: the listed contracts (from the broker, or the quarterly cycle for the paper broker) and
today are arguments; the answer carries the facts to journal, or why there is none.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from tradepipe.core.instruments import CONTINUOUS, MONTH_CODES
from tradepipe.core.tickers import default_canonical_ticker

ROLL_DAYS_BEFORE_EXPIRY = 2
EXCHANGE_TIME = ZoneInfo("America/New_York")


def exchange_date(now: datetime) -> date:
    """Today where US options and CME futures expire: an option expiring today is still
    today's until midnight in New York, not UTC."""
    return now.astimezone(EXCHANGE_TIME).date()


@dataclass(frozen=True, slots=True)
class Continuous:
    root: str  # ES
    nth: int  # 1: the front contract


def parse_continuous(ticker: str) -> Continuous | None:
    """TradingView's continuous contract (`ES1!`, `CME_MINI:MNQ2!`), or None."""
    match = CONTINUOUS.match(default_canonical_ticker(ticker))
    return Continuous(match["root"], int(match["nth"])) if match else None


@dataclass(frozen=True, slots=True)
class ListedFuture:
    symbol: str  # the dated contract as the broker names it: ESZ2026 (or its own local symbol)
    expiration: date


@dataclass(frozen=True, slots=True)
class Mapped:
    contract: ListedFuture
    fact: str  # "ES1! → ESH2027 (expires 2027-03-19; ESZ2026 rolled on 2026-12-16)"


@dataclass(frozen=True, slots=True)
class Unmapped:
    reason: str


def front_contract(
    continuous: str,
    nth: int,
    listed: Sequence[ListedFuture],
    today: date,
    roll_days: int = ROLL_DAYS_BEFORE_EXPIRY,
) -> Mapped | Unmapped:
    """The `nth` contract (1: the front one) still trading more than `roll_days` days before
    its expiry, of the root's listed contracts."""
    ordered = sorted(listed, key=lambda c: (c.expiration, c.symbol))
    rolled = [c for c in ordered if c.expiration - timedelta(days=roll_days) <= today]
    live = [c for c in ordered if c.expiration - timedelta(days=roll_days) > today]
    if len(live) < nth:
        last = f"; the last listed expires {ordered[-1].expiration.isoformat()}" if ordered else ""
        return Unmapped(
            f"{continuous}: no contract number {nth} expires more than {roll_days} days after"
            f" {today.isoformat()} ({len(listed)} listed{last})"
        )
    chosen = live[nth - 1]
    fact = f"{continuous} → {chosen.symbol} (expires {chosen.expiration.isoformat()}"
    if rolled and rolled[-1].expiration >= today:
        roll_day = rolled[-1].expiration - timedelta(days=roll_days)
        fact += f"; {rolled[-1].symbol} rolled on {roll_day.isoformat()}"
    fact += f"; roll {roll_days} days before expiry)"
    return Mapped(chosen, fact)


def quarterly_contracts(root: str, today: date, count: int = 4) -> list[ListedFuture]:
    """The next `count` contracts of the quarterly cycle (March, June, September, December),
    each expiring on its month's third Friday (the CME equity index rule): what the paper broker
    lists for a root it knows."""
    found: list[ListedFuture] = []
    year, month = today.year, today.month
    while len(found) < count:
        if month % 3 == 0:
            expiry = third_friday(year, month)
            if expiry >= today:
                code = MONTH_CODES[month - 1]
                found.append(ListedFuture(f"{root}{code}{year}", expiry))
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return found


def third_friday(year: int, month: int) -> date:
    first_weekday, _ = calendar.monthrange(year, month)  # Monday is 0
    first_friday = 1 + (calendar.FRIDAY - first_weekday) % 7
    return date(year, month, first_friday + 14)
