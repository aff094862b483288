"""Choosing an option contract from a chain, as TradersPost does (SPEC §15).

Pure: the chain, the underlying's price and today are arguments. The answer is a `Selection`
carrying the facts that chose it (journaled and shown in `signals show`) or a `NoContract`
whose reason says which rule found nothing and what the chain offered.

- `optionType`: `call` or `put`; `both` picks by direction (calls for bullish entries, puts for
  bearish ones).
- `expiration`: a date `YYYY-MM-DD`, or `+N days|weeks|months` from today (`+0 days`: today);
  the nearest listed expiration on or after it. Not given: the nearest listed from today on.
- the strike: `strikePrice` picks the listed strike nearest to it; otherwise `strikesAway` N
  (default 0) counts listed strikes from the one at the money (the listed strike nearest the
  underlying's price), out of the money (`intrinsicValue` `otm`, the default: up for calls,
  down for puts) or in the money (`itm`: down for calls, up for puts).

Ties go to the lower strike, the earlier date: the same chain and inputs always pick the same
contract.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from tradepipe.core.instruments import US_OPTION_MULTIPLIER


class OptionRight(StrEnum):
    CALL = "call"
    PUT = "put"

    @property
    def other(self) -> OptionRight:
        return OptionRight.PUT if self is OptionRight.CALL else OptionRight.CALL


@dataclass(frozen=True, slots=True)
class OptionContract:
    """One listed contract: its symbol at the broker (OCC for US options)."""

    symbol: str
    underlying: str
    right: OptionRight
    expiration: date
    strike: Decimal
    multiplier: Decimal = US_OPTION_MULTIPLIER


@dataclass(frozen=True, slots=True)
class OptionAsk:
    """What the signal asks for (its option fields, already validated by the signal parser)."""

    option_type: str  # "call", "put" or "both"
    expiration: str | None = None
    strike_price: Decimal | None = None
    strikes_away: int | None = None
    intrinsic_value: str = "otm"  # or "itm"


@dataclass(frozen=True, slots=True)
class Selection:
    contract: OptionContract
    facts: tuple[str, ...]  # how it was chosen, in the order the rules ran


@dataclass(frozen=True, slots=True)
class NoContract:
    reason: str


_RELATIVE = re.compile(r"^\+\s*(\d{1,4})\s*(day|week|month)s?$", re.IGNORECASE)


def expiration_target(text: str, today: date) -> date | str:
    """The date an `expiration` field names, or why it names none: `2026-12-18`, `+0 days`,
    `+2 weeks`, `+6 months` (a month later on the same day, or the month's last day)."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        n, unit = int(match[1]), match[2].lower()
        if unit == "day":
            return today + timedelta(days=n)
        if unit == "week":
            return today + timedelta(weeks=n)
        months = today.month - 1 + n
        year, month = today.year + months // 12, months % 12 + 1
        return date(year, month, min(today.day, calendar.monthrange(year, month)[1]))
    try:
        target = date.fromisoformat(text)
    except ValueError:
        return (
            f'expiration "{text}" is neither a date like 2026-12-18 nor "+N days", "+N weeks"'
            ' or "+N months"'
        )
    if target < today:
        return f"expiration {text} is before today ({today.isoformat()})"
    return target


def right_for(option_type: str, bullish: bool) -> OptionRight:
    """`call`/`put` as asked; `both`: calls for a bullish entry, puts for a bearish one."""
    if option_type == "both":
        return OptionRight.CALL if bullish else OptionRight.PUT
    return OptionRight(option_type)


def select_contract(
    chain: Sequence[OptionContract],
    underlying_price: Decimal,
    today: date,
    ask: OptionAsk,
    *,
    bullish: bool,
) -> Selection | NoContract:
    """The contract the ask picks from the chain (one underlying's), or why none fits."""
    right = right_for(ask.option_type, bullish)
    facts = [
        f"optionType {ask.option_type}: {right}"
        + (f" ({'bullish' if bullish else 'bearish'} entry)" if ask.option_type == "both" else "")
    ]
    if ask.expiration is None:
        target = today
        facts.append(f"expiration not given: the nearest listed from today ({today.isoformat()})")
    else:
        found = expiration_target(ask.expiration, today)
        if isinstance(found, str):
            return NoContract(found)
        target = found
    listed = sorted({c.expiration for c in chain if c.right is right and c.expiration >= today})
    if not listed:
        return NoContract(f"the chain lists no {right} expiring on or after {today.isoformat()}")
    expiration = next((d for d in listed if d >= target), None)
    if expiration is None:
        return NoContract(
            f"no {right} expires on or after {target.isoformat()} (expiration"
            f" {ask.expiration}); the last listed is {listed[-1].isoformat()}"
        )
    if ask.expiration is not None:
        facts.append(
            f"expiration {ask.expiration} → {target.isoformat()}: nearest listed on or after"
            f" it {expiration.isoformat()}"
        )
    strikes = sorted(
        (c for c in chain if c.right is right and c.expiration == expiration),
        key=lambda c: c.strike,
    )
    prices = [c.strike for c in strikes]
    shown = f"{len(prices)} strikes {_num(prices[0])}–{_num(prices[-1])}"
    wanted = ask.strike_price
    if wanted is not None:
        chosen = min(strikes, key=lambda c: (abs(c.strike - wanted), c.strike))
        facts.append(f"strikePrice {_num(wanted)}: nearest listed {_num(chosen.strike)} ({shown})")
        return Selection(chosen, tuple(facts))
    if not underlying_price.is_finite() or underlying_price <= 0:
        return NoContract(f"no usable price of the underlying ({underlying_price})")
    atm = min(range(len(prices)), key=lambda i: (abs(prices[i] - underlying_price), prices[i]))
    away = ask.strikes_away or 0
    itm = ask.intrinsic_value == "itm"
    # Out of the money: calls above the price, puts below it; in the money the other way.
    step = 1 if (right is OptionRight.CALL) != itm else -1
    index = atm + step * away
    moneyness = "in" if itm else "out of"
    if not 0 <= index < len(prices):
        room = len(prices) - 1 - atm if step > 0 else atm
        return NoContract(
            f"strikesAway {away} {moneyness} the money: the {right}s expiring"
            f" {expiration.isoformat()} list only {room} strikes beyond the one at the money"
            f" ({_num(prices[atm])}, underlying {_num(underlying_price)}; {shown})"
        )
    chosen = strikes[index]
    facts.append(
        f"underlying {_num(underlying_price)}: at the money {_num(prices[atm])};"
        f" strikesAway {away} {moneyness} the money → {_num(chosen.strike)} ({shown})"
    )
    return Selection(chosen, tuple(facts))


def occ_symbol(underlying: str, expiration: date, right: OptionRight, strike: Decimal) -> str:
    """The OCC symbol without padding, as Alpaca spells it: AAPL261218C00200000."""
    thousandths = int((strike * 1000).to_integral_value())
    letter = "C" if right is OptionRight.CALL else "P"
    return f"{underlying}{expiration:%y%m%d}{letter}{thousandths:08d}"


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")
