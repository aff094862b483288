"""Alpaca's option contracts (its options API, `/v2/options/contracts`) read as ours
(SPEC §15): the chain of an underlying, paged through `next_page_token`, and what one contract
is worth (its `size`, 100 shares for a standard US equity option).

The translation has no I/O (`to_option_contract`, `contract_rules`, `chain_request`);
`fetch_chain` and `fetch_contract` do the asking through the adapter's `call`
(`tradepipe.brokers.alpaca.transport.Calls.call`: a thread, a deadline, our errors).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Any

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetStatus
from alpaca.trading.requests import GetOptionContractsRequest

from tradepipe.brokers.alpaca.parsing import decimal
from tradepipe.brokers.alpaca.transport import NotFound
from tradepipe.brokers.base import InstrumentRules
from tradepipe.core.instruments import US_OPTION_MULTIPLIER, InstrumentKind
from tradepipe.core.options import OptionContract, OptionRight
from tradepipe.errors import BrokerUnavailable, OrderRejected

CHAIN_PAGE = 10_000  # contracts per page (Alpaca's maximum; its default is 100)
MAX_PAGES = 50  # a chain longer than 500,000 contracts is a broker gone wrong, not a chain
RIGHTS = {"call": OptionRight.CALL, "put": OptionRight.PUT}


def to_option_contract(raw: dict[str, Any]) -> OptionContract | None:
    """One of Alpaca's option contracts (raw JSON) as ours, its OCC symbol as Alpaca spells
    it; None for one not tradable (inactive, or `tradable` false) or unreadable."""
    if raw.get("status", "active") != "active" or raw.get("tradable") is False:
        return None
    right = RIGHTS.get(str(raw.get("type", "")).lower())
    strike = decimal(raw.get("strike_price"))
    try:
        expiration = date.fromisoformat(str(raw.get("expiration_date")))
    except ValueError:
        return None
    symbol, underlying = raw.get("symbol"), raw.get("underlying_symbol")
    if right is None or strike is None or strike <= 0 or not symbol or not underlying:
        return None
    return OptionContract(
        symbol=str(symbol),
        underlying=str(underlying),
        right=right,
        expiration=expiration,
        strike=strike.normalize() if strike == strike.to_integral_value() else strike,
        multiplier=contract_size(raw),
    )


def contract_size(raw: dict[str, Any]) -> Decimal:
    """Shares per contract: Alpaca's `size` ("100"); an adjusted contract may differ."""
    size = decimal(raw.get("size"))
    return size if size is not None and size > 0 else US_OPTION_MULTIPLIER


def contract_rules(raw: dict[str, Any]) -> InstrumentRules:
    """What a contract allows: whole contracts, each worth `size` shares (SPEC §12)."""
    return InstrumentRules(
        lot_size=Decimal(1), kind=InstrumentKind.OPTION, multiplier=contract_size(raw)
    )


def chain_request(underlying: str, today: date, page_token: str | None) -> Any:
    """One page of the underlying's active contracts expiring today or later."""
    return GetOptionContractsRequest(
        underlying_symbols=[underlying],
        status=AssetStatus.ACTIVE,
        expiration_date_gte=today,
        limit=CHAIN_PAGE,
        page_token=page_token,
    )


Call = Callable[..., Awaitable[Any]]


async def fetch_chain(
    call: Call, trading: TradingClient, underlying: str, today: date
) -> tuple[list[OptionContract], dict[str, InstrumentRules]]:
    """Every page of the chain; the contracts, and each one's rules by symbol."""
    contracts: list[OptionContract] = []
    rules: dict[str, InstrumentRules] = {}
    token: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = await call(
            f"listing the option contracts of {underlying}",
            trading.get_option_contracts,
            chain_request(underlying, today, token),
        )
        for raw in page.get("option_contracts") or ():
            contract = to_option_contract(raw)
            if contract is not None and contract.symbol not in rules:
                contracts.append(contract)
                rules[contract.symbol] = contract_rules(raw)
        token = page.get("next_page_token") or None
        if token is None:
            break
        if token in seen:  # the same page again: the broker loops
            raise BrokerUnavailable(
                f"alpaca: the option contracts of {underlying} page back to token {token}"
            )
        seen.add(token)
    else:
        raise BrokerUnavailable(
            f"alpaca: the option contracts of {underlying} run past {MAX_PAGES} pages of"
            f" {CHAIN_PAGE}"
        )
    if not contracts:
        raise OrderRejected(
            f"alpaca: {underlying} has no tradable option contracts expiring on or after"
            f" {today.isoformat()}"
        )
    contracts.sort(key=lambda c: (c.expiration, c.right, c.strike))
    return contracts, rules


async def fetch_contract(call: Call, trading: TradingClient, symbol: str) -> InstrumentRules:
    """One contract's rules; a symbol Alpaca does not list (or no longer trades) is refused."""
    try:
        raw = await call("reading an option contract", trading.get_option_contract, symbol)
    except NotFound:
        raise OrderRejected(f"{symbol}: Alpaca lists no such option contract") from None
    if to_option_contract(raw) is None:
        raise OrderRejected(
            f"{symbol}: the option contract is not tradable at Alpaca"
            f" (status {raw.get('status')}, tradable {raw.get('tradable')})"
        )
    return contract_rules(raw)
