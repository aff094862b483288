"""Interactive Brokers' words and ours, translated both ways without any I/O: tickers and
contracts, and the numbers IB sends. Orders, statuses, executions and positions are
`orders`'; SDK names (camelCase, IB's status strings) stop there, here and in the adapter,
`tradepipe.brokers.ibkr.broker`, which does the talking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import ib_async

from tradepipe.core.instruments import InstrumentKind
from tradepipe.errors import OrderRejected

_CONTINUOUS = re.compile(r"^[A-Z0-9]+\d!$")
_FUTURE = re.compile(r"^(?P<root>[A-Z0-9]{1,6})(?P<month>[FGHJKMNQUVXZ])(?P<year>20\d\d)$")
_OPTION = re.compile(r"^(?P<root>[A-Z]{1,6})\s*(?P<expiry>\d{6})(?P<right>[CP])(?P<strike>\d{8})$")
_STOCK = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
MONTH_CODES = "FGHJKMNQUVXZ"
# The exchange of the common futures roots (SPEC §12's table), for a future named without one.
FUTURES_EXCHANGES = {
    **dict.fromkeys(("ES", "MES", "NQ", "MNQ", "RTY", "M2K"), "CME"),
    **dict.fromkeys(("YM", "MYM"), "CBOT"),
    **dict.fromkeys(("CL", "MCL"), "NYMEX"),
    **dict.fromkeys(("GC", "MGC"), "COMEX"),
}


# -- tickers and contracts --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instrument:
    """What a ticker names at IB; `ticker` is its canonical spelling."""

    ticker: str
    kind: str  # STK, FUT, OPT
    symbol: str
    exchange: str = ""
    month: str = ""  # FUT: YYYYMM; OPT: expiry YYYYMMDD
    right: str = ""
    strike: Decimal | None = None


def parse_ticker(ticker: str) -> Instrument:
    """A signal's ticker as an IB instrument; an unusable one is refused with the syntax."""
    text = ticker.strip().upper()
    exchange, _, bare = text.rpartition(":")
    if _CONTINUOUS.match(bare):
        raise OrderRejected(
            f'IB: "{ticker}" is a continuous futures symbol; IB orders need one contract'
            f' month: write root + month code + year, e.g. "{bare[:-2]}Z2026" (December'
            ' 2026), optionally with the exchange, "CME:' + bare[:-2] + 'Z2026"'
        )
    if match := _FUTURE.match(bare):
        month = f"{match['year']}{MONTH_CODES.index(match['month']) + 1:02d}"
        return Instrument(bare, "FUT", match["root"], exchange, month)
    if match := _OPTION.match(bare):
        strike = Decimal(match["strike"]) / 1000
        canonical = f"{match['root']} {match['expiry']}{match['right']}{match['strike']}"
        return Instrument(
            canonical,
            "OPT",
            match["root"],
            exchange,
            f"20{match['expiry']}",
            match["right"],
            strike,
        )
    if _STOCK.match(bare):
        return Instrument(bare, "STK", bare.replace(".", " "))
    raise OrderRejected(
        f'IB: cannot read the ticker "{ticker}": use a stock symbol ("AAPL"), a future with its'
        ' contract month ("ESZ2026") or an OCC option symbol ("AAPL 261218C00200000")'
    )


def canonical(ticker: str) -> str:
    """One spelling per instrument ("NASDAQ:AAPL" and "AAPL" are one stock)."""
    try:
        return parse_ticker(ticker).ticker
    except OrderRejected:
        return ticker


def to_contract(instrument: Instrument) -> ib_async.Contract:
    if instrument.kind == "FUT":
        exchange = instrument.exchange or FUTURES_EXCHANGES.get(instrument.symbol, "")
        return ib_async.Future(instrument.symbol, instrument.month, exchange, currency="USD")
    if instrument.kind == "OPT":
        assert instrument.strike is not None
        return ib_async.Option(
            instrument.symbol,
            instrument.month,
            float(instrument.strike),
            instrument.right,
            "SMART",
            multiplier="100",  # a US equity option: 100 shares (OCC symbols name no other)
            currency="USD",
        )
    return ib_async.Stock(instrument.symbol, "SMART", "USD")


# IB's security types → ours (SPEC §12); anything else trades like a stock would.
KINDS = {
    "STK": InstrumentKind.STOCK,
    "FUT": InstrumentKind.FUTURE,
    "OPT": InstrumentKind.OPTION,
    "FOP": InstrumentKind.OPTION,
    "CRYPTO": InstrumentKind.CRYPTO,
}


def contract_value(details: ib_async.ContractDetails) -> tuple[InstrumentKind, Decimal]:
    """What one unit of a contract is worth per point: its kind and multiplier (ES "50",
    an option "100"; a stock has none, so 1)."""
    contract = details.contract
    assert contract is not None  # contract details always describe a contract
    kind = KINDS.get(contract.secType, InstrumentKind.STOCK)
    return kind, parse_number(contract.multiplier) or Decimal(1)


def ticker_of(contract: ib_async.Contract) -> str:
    """Our spelling of an IB contract (for orders and positions tradepipe did not place)."""
    if contract.secType == "FUT" and len(contract.lastTradeDateOrContractMonth) >= 6:
        month = contract.lastTradeDateOrContractMonth
        return f"{contract.symbol}{MONTH_CODES[int(month[4:6]) - 1]}{month[:4]}"
    if contract.secType == "OPT":
        strike = int(Decimal(str(contract.strike)) * 1000)
        expiry = contract.lastTradeDateOrContractMonth[2:]
        return f"{contract.symbol} {expiry}{contract.right[:1]}{strike:08d}"
    return contract.symbol.replace(" ", ".")


# -- numbers -----------------------------------------------------------------------------------


def parse_number(value: Any) -> Decimal | None:
    """A number IB sent (float, str, Decimal); None for unset or unreadable."""
    if value is None or value == "" or value == ib_async.util.UNSET_DOUBLE:
        return None
    try:
        return parse_quantity(value)
    except InvalidOperation:
        return None


def parse_quantity(value: float | Decimal) -> Decimal:
    """IB reports quantities as floats: 5.0 is 5 shares, as our journal writes it."""
    number = Decimal(str(value))
    return (
        number.to_integral_value() if number == number.to_integral_value() else number.normalize()
    )


# -- fills -------------------------------------------------------------------------------------


def execution_revision(exec_id: str) -> tuple[str, int]:
    """An execId as (the execution's own id, its revision). IB corrects an execution by
    sending it again with the digits after the final period raised ("….01.01" → "….01.02",
    https://interactivebrokers.github.io/tws-api/classIBApi_1_1Execution.html)."""
    stem, dot, revision = exec_id.rpartition(".")
    if not dot or not stem or not revision.isdigit():
        return exec_id, 0
    return stem, int(revision)
