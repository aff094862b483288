"""The paper broker's option chains and futures listings (SPEC §15).

A chain is the one an operator gave the account for the underlying (`tradepipe paper chain`,
journaled in `paper_chains`), else one generated around the underlying's mark: 20 strikes each
side of the one at the money at a step that suits the price, expiring every Friday for 8 weeks
and on the third Friday of each of the next 6 months. Contracts are OCC symbols; what they cost
is their own mark (`tradepipe paper quote ACCOUNT AAPL261218C00200000 4.10`), like any ticker.

Futures: the quarterly contracts (March, June, September, December, expiring on the third
Friday) of a root the paper broker knows (SPEC §12's table or the account's `instruments`).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from tradepipe.core.continuous import third_friday
from tradepipe.core.options import OptionContract, OptionRight, occ_symbol

STRIKES_EACH_SIDE = 20
WEEKS = 8
MONTHS = 6


def strike_step(price: Decimal) -> Decimal:
    """The listed strikes' spacing near a price, as US equity options commonly list them."""
    for below, step in ((25, "0.5"), (100, "1"), (250, "2.5"), (1000, "5")):
        if price < below:
            return Decimal(step)
    return Decimal(10)


def expirations(today: date) -> list[date]:
    """Every Friday for WEEKS weeks from today, and the third Friday of the next MONTHS
    months."""
    first_friday = today + timedelta(days=(4 - today.weekday()) % 7)
    dates = {first_friday + timedelta(weeks=n) for n in range(WEEKS)}
    year, month = today.year, today.month
    for _ in range(MONTHS + 1):
        friday = third_friday(year, month)
        if friday >= today:
            dates.add(friday)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(dates)[: WEEKS + MONTHS]


def generated_chain(underlying: str, mark: Decimal, today: date) -> list[OptionContract]:
    step = strike_step(mark)
    atm = (mark / step).to_integral_value() * step
    strikes = [atm + step * n for n in range(-STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1)]
    return chain_of(
        underlying,
        [
            (expiry, right, strike)
            for expiry in expirations(today)
            for right in OptionRight
            for strike in strikes
            if strike > 0
        ],
    )


def chain_of(
    underlying: str, rows: list[tuple[date, OptionRight, Decimal]]
) -> list[OptionContract]:
    return [
        OptionContract(
            occ_symbol(underlying, expiry, right, strike), underlying, right, expiry, strike
        )
        for expiry, right, strike in rows
    ]


_RIGHTS = {
    "call": OptionRight.CALL,
    "c": OptionRight.CALL,
    "put": OptionRight.PUT,
    "p": OptionRight.PUT,
}


def parse_chain_file(text: str) -> list[tuple[date, OptionRight, Decimal]] | str:
    """A chain file's contracts: JSON (a list of {"expiration", "right", "strike"}) or CSV with
    a header `expiration,right,strike`; or what is wrong with it, naming the row."""
    stripped = text.strip()
    if not stripped:
        return "the chain file is empty"
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as e:
            return f"the chain file is not valid JSON: {e}"
        if isinstance(data, dict):
            data = data.get("contracts")
        if not isinstance(data, list):
            return 'the chain JSON must be a list of {"expiration", "right", "strike"}'
        rows: list[dict] = data
    else:
        reader = csv.DictReader(io.StringIO(stripped))
        names = [n.strip().lower() for n in reader.fieldnames or []]
        if not {"expiration", "right", "strike"} <= set(names):
            return f"the chain CSV needs a header expiration,right,strike (got {','.join(names)})"
        rows = [{k.strip().lower(): v for k, v in row.items() if k} for row in reader]
    out: list[tuple[date, OptionRight, Decimal]] = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            return f"contract {n}: not an object with expiration, right, strike"
        try:
            expiry = date.fromisoformat(str(row.get("expiration", "")).strip())
        except ValueError:
            return (
                f"contract {n}: expiration {row.get('expiration')!r} is not a date like 2026-12-18"
            )
        right = _RIGHTS.get(str(row.get("right", "")).strip().lower())
        if right is None:
            return f"contract {n}: right {row.get('right')!r} is not call or put"
        try:
            strike = Decimal(str(row.get("strike", "")).strip())
        except InvalidOperation:
            strike = Decimal("NaN")
        if not strike.is_finite() or strike <= 0:
            return f"contract {n}: strike {row.get('strike')!r} is not a positive price"
        out.append((expiry, right, strike))
    if not out:
        return "the chain file lists no contracts"
    return out
