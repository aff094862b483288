"""Option chains and listed futures at IB (SPEC §15): IB's answers translated without I/O,
and the two asks that fetch them.

- An option chain is `reqSecDefOptParams`: per exchange and trading class, a list of
  expirations and a list of strikes. That is a cross product, and IB does not list every pair
  (a far expiration has fewer strikes than a near one). The chain answered here is the cross
  product of SMART's standard trading class (the one named like the underlying: SPY, not a
  weekly class such as SPXW); a contract picked from it is qualified with `reqContractDetails`
  before any order is sent (`IbkrBroker._details`), and a pair IB does not list is refused
  there with IB's own words (error 200), never sent.
- A root's listed futures are `reqContractDetails` on `Future(root, exchange=…)` without a
  month: IB answers every dated contract. Each is named as this adapter's orders name it,
  ROOT + month code + year of its contract month (`ESZ2026`; CL's December contract stops
  trading in November, so the contract month, not the last trade date, names it), and
  expires on its last trade date.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

import ib_async

from tradepipe.brokers.ibkr.translation import (
    FUTURES_EXCHANGES,
    MONTH_CODES,
    parse_number,
    parse_ticker,
)
from tradepipe.core.continuous import ListedFuture
from tradepipe.core.options import OptionContract, OptionRight, occ_symbol
from tradepipe.core.tickers import default_canonical_ticker
from tradepipe.errors import OrderRejected

if TYPE_CHECKING:
    from tradepipe.brokers.ibkr.broker import IbkrBroker

SMART = "SMART"


# -- translation (pure) ------------------------------------------------------------------------


def option_symbol(underlying: str, expiration: date, right: OptionRight, strike: Decimal) -> str:
    """IB's spelling of a contract (`translation.canonical`): the OCC symbol, root and contract
    apart: "AAPL 261218C00200000"."""
    return default_canonical_ticker(occ_symbol(underlying, expiration, right, strike))


def parse_ib_date(text: str) -> date | None:
    """IB's YYYYMMDD (a date; a bare YYYYMM month is no date)."""
    text = text.strip()[:8]
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def chain_contracts(
    underlying: str, params: Sequence[ib_async.OptionChain], today: date
) -> list[OptionContract]:
    """The contracts of SMART's standard trading class (named like the underlying), every
    expiration from today on × every strike, calls and puts. Refused, with what IB offered,
    when there is no such class."""
    chosen = [p for p in params if p.exchange == SMART and p.tradingClass == underlying]
    if not chosen:
        offered = ", ".join(sorted({f"{p.exchange}/{p.tradingClass}" for p in params}))
        raise OrderRejected(
            f"IB: {underlying} has no options on SMART under trading class {underlying}"
            + (f" (IB lists {offered})" if offered else " (IB lists none)")
        )
    found: dict[str, OptionContract] = {}
    for chain in chosen:
        multiplier = parse_number(chain.multiplier) or Decimal(100)
        strikes = sorted({Decimal(str(s)).normalize() for s in chain.strikes})
        for text in chain.expirations:
            expiration = parse_ib_date(text)
            if expiration is None or expiration < today:
                continue
            for strike in strikes:
                for right in OptionRight:
                    symbol = option_symbol(underlying, expiration, right, strike)
                    found[symbol] = OptionContract(
                        symbol, underlying, right, expiration, strike, multiplier
                    )
    return sorted(found.values(), key=lambda c: (c.expiration, c.right, c.strike))


def listed_future(details: ib_async.ContractDetails) -> ListedFuture | None:
    """One dated contract IB listed, named as our orders name it; None if IB's answer lacks
    its month or last trade date."""
    contract = details.contract
    if contract is None:
        return None
    month = (details.contractMonth or contract.lastTradeDateOrContractMonth)[:6]
    expiration = parse_ib_date(details.realExpirationDate or "") or parse_ib_date(
        contract.lastTradeDateOrContractMonth
    )
    if len(month) != 6 or not month.isdigit() or expiration is None:
        return None
    return ListedFuture(
        f"{contract.symbol}{MONTH_CODES[int(month[4:]) - 1]}{month[:4]}", expiration
    )


def futures_probe(root: str) -> ib_async.Future:
    """What to ask IB for a root's contracts: `CME:ES` or a known root (`ES` → CME)."""
    exchange, _, bare = root.strip().upper().rpartition(":")
    exchange = exchange or FUTURES_EXCHANGES.get(bare, "")
    return ib_async.Future(bare, exchange=exchange, currency="USD")


# -- the asks ----------------------------------------------------------------------------------


async def option_chain(broker: IbkrBroker, underlying: str) -> list[OptionContract]:
    """The stock's conId (contract details), then its chain's parameters."""
    broker._link()
    instrument = parse_ticker(underlying)
    if instrument.kind != "STK":
        raise OrderRejected(f"IB {broker.name}: {underlying} is no stock: it has no option chain")
    details = await broker._details(instrument.ticker)
    assert details.contract is not None
    params = await broker._ask(
        f"asking for the option chain of {instrument.ticker}",
        broker._ib.reqSecDefOptParamsAsync(instrument.symbol, "", "STK", details.contract.conId),
    )
    return chain_contracts(instrument.symbol, params, broker._clock().date())


async def futures_contracts(broker: IbkrBroker, root: str) -> list[ListedFuture]:
    """Every dated contract of the root from today on, by expiry."""
    broker._link()
    probe = futures_probe(root)
    found = await broker._ask(
        f"asking for the contracts of {root}", broker._ib.reqContractDetailsAsync(probe)
    )
    exchanges = sorted({d.contract.exchange for d in found if d.contract})
    if len(exchanges) > 1:
        raise OrderRejected(
            f"IB {broker.name}: {root} is listed on {', '.join(exchanges)}: name the exchange,"
            f' e.g. "{exchanges[0]}:{probe.symbol}"'
        )
    today = broker._clock().date()
    listed = {f.symbol: f for d in found if (f := listed_future(d)) and f.expiration >= today}
    if not listed:
        where = f" on {probe.exchange}" if probe.exchange else ""
        raise OrderRejected(f"IB {broker.name}: IB lists no contracts of {root}{where}")
    return sorted(listed.values(), key=lambda f: (f.expiration, f.symbol))
