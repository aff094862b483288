"""Instruments: what one unit is worth (SPEC §12).

Pure. An instrument has a kind (stock, crypto, future, option) and a **multiplier**: the value
of one unit per point of price (1 for stocks and crypto, the point value for futures, 100 for
US equity options). Brokers say so from their contract data; the paper broker has none and
reads it from the ticker: a futures ticker is ROOT + month code + year (`ESZ2026`, `ESZ26`,
also `CME_MINI:ESZ2026`), and the roots below are the common ones (overrides come from the
config's `[accounts.NAME.instruments.ROOT]`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tradepipe.core.tickers import default_canonical_ticker


class InstrumentKind(StrEnum):
    STOCK = "stock"
    CRYPTO = "crypto"
    FUTURE = "future"
    OPTION = "option"


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """A futures root's contract: the value of one point, its tick and its lot."""

    multiplier: Decimal
    tick_size: Decimal
    lot_size: Decimal = Decimal(1)


def _spec(multiplier: str, tick: str) -> ContractSpec:
    return ContractSpec(Decimal(multiplier), Decimal(tick))


# SPEC §12's table: CME / CBOT / NYMEX / COMEX, in USD per point.
FUTURES_ROOTS: dict[str, ContractSpec] = {
    "ES": _spec("50", "0.25"),
    "MES": _spec("5", "0.25"),
    "NQ": _spec("20", "0.25"),
    "MNQ": _spec("2", "0.25"),
    "YM": _spec("5", "1"),
    "MYM": _spec("0.5", "1"),
    "RTY": _spec("50", "0.1"),
    "M2K": _spec("5", "0.1"),
    "CL": _spec("1000", "0.01"),
    "MCL": _spec("100", "0.01"),
    "GC": _spec("100", "0.1"),
    "MGC": _spec("10", "0.1"),
}

MONTH_CODES = "FGHJKMNQUVXZ"
ROOT = re.compile(r"[A-Z][A-Z0-9]{0,5}")
# ROOT + month code + year (2 or 4 digits): the month is the letter right before the digits.
_DATED = re.compile(r"^(?P<root>[A-Z][A-Z0-9]{0,5})(?P<month>[FGHJKMNQUVXZ])(?P<year>(?:20)?\d\d)$")
# TradingView's continuous contract ("ES1!", "MNQ2!"): which month it is, is decided elsewhere
# (SPEC §15), but what one contract is worth is already the root's.
CONTINUOUS = re.compile(r"^(?P<root>[A-Z][A-Z0-9]{0,5}?)(?P<nth>[1-9])!$")
_OCC_OPTION = re.compile(r"^[A-Z]{1,6} ?[0-9]{6}[CP][0-9]{8}$")
US_OPTION_MULTIPLIER = Decimal(100)


@dataclass(frozen=True, slots=True)
class FuturesTicker:
    root: str
    month: int | None  # 1-12; None for a continuous contract ("ES1!")
    year: int | None


def parse_future(ticker: str) -> FuturesTicker | None:
    """The futures contract a ticker names, or None if it is not written as one. The form is
    all it checks: an unknown root is still a future (`ZBZ2026`), whose value nobody knows."""
    text = default_canonical_ticker(ticker)
    if match := _DATED.match(text):
        year, month = int(match["year"]), MONTH_CODES.index(match["month"]) + 1
        return FuturesTicker(match["root"], month, year if year >= 100 else 2000 + year)
    if match := CONTINUOUS.match(text):
        return FuturesTicker(match["root"], None, None)
    return None


def lane_key(ticker: str) -> str:
    """What one lane of work serializes (a canonical ticker in): the underlying of every way to
    name positions in it. An option contract goes with its underlying (`AAPL 261218C00200000`
    and an `AAPL` alert with option fields trade the same contracts), a dated future with its
    continuous ticker (`ES1!` is mapped to `ESZ2026`, which an alert may also name). Anything
    else is its own key. Two names that only look alike share a lane: they wait for each
    other, nothing worse."""
    if _OCC_OPTION.match(ticker):
        return ticker[: len(ticker) - 15].strip()
    if (future := parse_future(ticker)) is not None:
        return f"{future.root}!"
    return ticker


def is_us_option(ticker: str) -> bool:
    """An OCC option symbol ("SPY 261218C00600000", with or without the space)."""
    return _OCC_OPTION.match(default_canonical_ticker(ticker)) is not None


def contract_spec(
    root: str, overrides: Mapping[str, ContractSpec] | None = None
) -> ContractSpec | None:
    """A root's contract: the account's override, else the table of SPEC §12, else None."""
    if overrides and root in overrides:
        return overrides[root]
    return FUTURES_ROOTS.get(root)


def overridden(
    root: str,
    multiplier: Decimal | None = None,
    tick_size: Decimal | None = None,
    lot_size: Decimal | None = None,
) -> ContractSpec | str:
    """A root's contract with the values a config table gives, the rest from the table of
    SPEC §12; or why there is none (a root it does not know needs multiplier and tick_size)."""
    known = FUTURES_ROOTS.get(root)
    if known is None:
        missing = [
            n for n, v in (("multiplier", multiplier), ("tick_size", tick_size)) if v is None
        ]
        if missing:
            return (
                f"{root} is not a futures root tradepipe knows ({', '.join(FUTURES_ROOTS)}):"
                f" give its {' and '.join(missing)}"
            )
        assert multiplier is not None and tick_size is not None
        return ContractSpec(multiplier, tick_size, lot_size or Decimal(1))
    return ContractSpec(
        multiplier or known.multiplier, tick_size or known.tick_size, lot_size or known.lot_size
    )


def unit_multiplier(ticker: str, overrides: Mapping[str, ContractSpec] | None = None) -> Decimal:
    """What one unit of `ticker` is worth per point, read from its form (SPEC §12): a future's
    root from the account's overrides or the table, 100 for a US option, else 1. The paper
    broker's rule; for other brokers a best reading without their contract data (a future of a
    root nobody configured counts 1)."""
    future = parse_future(ticker)
    if future is not None:
        spec = contract_spec(future.root, overrides)
        return spec.multiplier if spec is not None else Decimal(1)
    return US_OPTION_MULTIPLIER if is_us_option(ticker) else Decimal(1)
