"""ccxt's markets read as ours: which market a TradingView ticker names, its tick, step and
minimums and the refusals that cite them, and what the account holds there (spot balances,
swap positions, a price). No I/O: the adapter, `tradepipe.brokers.ccxt.broker`, loads the markets.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any

from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

from tradepipe.brokers.base import InstrumentRules
from tradepipe.brokers.ccxt.orders import decimal
from tradepipe.core.instruments import InstrumentKind
from tradepipe.core.model import Position
from tradepipe.core.tickers import default_canonical_ticker
from tradepipe.errors import OrderRejected

# TradingView's perpetual suffix ("BTCUSDT.P").
_PERPETUAL = re.compile(r"(?:\.P)+$")
# Quote currencies that are cash, not positions, when balances are read as spot positions.
CASH = ("USDT", "USDC", "USD", "FDUSD", "EUR")


def find_market(
    markets: Mapping[str, dict[str, Any]],
    markets_by_id: Mapping[str, list[dict[str, Any]]],
    ticker: str,
    market_type: str,
) -> dict[str, Any] | None:
    """The active market of `market_type` that a TradingView ticker names: "BTCUSDT",
    "BINANCE:BTCUSDT", "BTCUSDT.P" (a perpetual) or ccxt's own "BTC/USDT"; None if none."""
    names = [ticker, ticker.split(":", 1)[-1]]
    names += [n.removesuffix(".P") for n in names]
    for name in names:
        market = markets.get(name)
        candidates = [market] if market else markets_by_id.get(name, [])
        for market in candidates:
            if market.get("type") == market_type and market.get("active") is not False:
                return market
    return None


def market_ticker(
    markets: Mapping[str, dict[str, Any]],
    markets_by_id: Mapping[str, list[dict[str, Any]]],
    ticker: str,
    market_type: str,
) -> str:
    """The canonical ticker: the exchange's id of the market a ticker names ("BTCUSDT" for
    "BINANCE:BTCUSDT", "BTC/USDT" or "BTCUSDT.P"), TradingView's own spelling on Binance and
    the one positions and orders are reported under. Before the markets are loaded, or for a
    ticker no market has, the rule Binance's ids follow: no prefix, no slash, upper case."""
    for name in dict.fromkeys((ticker.strip(), default_canonical_ticker(ticker))):
        market = find_market(markets, markets_by_id, name, market_type)
        if market is not None:
            return str(market["id"])
    text = default_canonical_ticker(ticker)
    if "/" in text:  # a unified symbol; a swap's names its settle currency after a colon
        text = text.split(":", 1)[0].replace("/", "")
    text = default_canonical_ticker(_PERPETUAL.sub("", text))
    market = find_market(markets, markets_by_id, text, market_type)
    return str(market["id"]) if market is not None else text


def step_of(value: Any, precision_mode: int) -> Decimal | None:
    """A market's precision (decimal places or tick size, per the exchange's mode) as a step."""
    if value is None:
        return None
    if precision_mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(value))
    return decimal(value) if precision_mode == TICK_SIZE else None


def instrument_rules(market: dict[str, Any], precision_mode: int) -> InstrumentRules:
    """A market's steps and minimums; a contract market's `contractSize` is what one unit
    (one contract) is worth per point of price, a spot market's unit is one coin (SPEC §12).
    An inverse contract is worth a fixed amount of the quote currency whatever the price: no
    multiplier describes it, so it is refused rather than sized wrongly."""
    if market.get("inverse"):
        raise OrderRejected(
            f"{market['symbol']} is an inverse contract (each worth {market.get('contractSize')}"
            f" {market.get('quote')} at any price): tradepipe sizes linear contracts and spot only"
        )
    limits = market.get("limits") or {}
    return InstrumentRules(
        tick_size=step_of(market["precision"].get("price"), precision_mode),
        lot_size=step_of(market["precision"].get("amount"), precision_mode),
        min_quantity=decimal((limits.get("amount") or {}).get("min")),
        min_notional=decimal((limits.get("cost") or {}).get("min")),
        kind=InstrumentKind.CRYPTO,
        multiplier=decimal(market.get("contractSize")) or Decimal(1),
    )


def check_written(
    value: Decimal,
    written: str,
    *,
    field: str,
    is_price: bool,
    market: dict[str, Any],
    precision_mode: int,
    exchange_id: str,
) -> Decimal:
    """`value` if the exchange's precision function wrote it unchanged (`written`); one it
    would change is refused naming the step, so that what the journal holds is what was sent."""
    if Decimal(written) != value:
        step = step_of(market["precision"].get("price" if is_price else "amount"), precision_mode)
        raise OrderRejected(
            f"{exchange_id}: {field} {value} of {market['symbol']} is not a multiple of the"
            f" market's step {step} (it would be sent as {written})"
        )
    return value


def check_min_quantity(
    quantity: Decimal, rules: InstrumentRules, symbol: str, exchange_id: str
) -> None:
    if rules.min_quantity is not None and quantity < rules.min_quantity:
        raise OrderRejected(
            f"{exchange_id}: quantity {quantity} of {symbol} is below the market's"
            f" minimum {rules.min_quantity.normalize():f}"
        )


def check_min_notional(
    quantity: Decimal,
    reference: Decimal | None,
    rules: InstrumentRules,
    market: dict[str, Any],
    exchange_id: str,
) -> None:
    """The order's value at `reference` (its price, else a quote; None: not checked) against
    the market's minimum notional."""
    if rules.min_notional is None or reference is None:
        return
    value = quantity * reference * rules.multiplier  # contracts × contract size
    if value < rules.min_notional:
        raise OrderRejected(
            f"{exchange_id}: order value {value.normalize():f}"
            f" {market['quote']} of {market['symbol']} is below the market's minimum notional"
            f" {rules.min_notional.normalize():f}"
        )


def spot_holdings(
    totals: Mapping[str, Any], used_symbols: Collection[str], market_symbols: Collection[str]
) -> list[tuple[str, Decimal]]:
    """Balances as (symbol, quantity) positions: every currency held that is not cash (the
    quote of a market this process used, or a usual quote currency), in the market this
    process used for it, else its market against a usual quote currency; none if it has none."""
    cash = {s.split("/")[1] for s in used_symbols} | set(CASH)
    held = []
    for currency, total in totals.items():
        if not total or currency in cash:
            continue
        symbol = next((s for s in used_symbols if s.split("/")[0] == currency), None)
        symbol = symbol or next(
            (f"{currency}/{q}" for q in CASH if f"{currency}/{q}" in market_symbols), None
        )
        if symbol is not None:
            held.append((symbol, Decimal(str(total))))
    return held


def swap_position(raw: dict[str, Any], ticker: str) -> Position:
    """A ccxt (perpetual) position: contracts times contract size, negative when short."""
    size = (decimal(raw.get("contracts")) or Decimal(0)) * (
        decimal(raw.get("contractSize")) or Decimal(1)
    )
    if raw.get("side") == "short":
        size = -size
    return Position(ticker, size, decimal(raw.get("entryPrice")))


def price_of(ticker_data: dict[str, Any]) -> Decimal | None:
    """A ccxt ticker's last price, else the middle of its bid and ask; None without either."""
    last = decimal(ticker_data.get("last"))
    bid, ask = decimal(ticker_data.get("bid")), decimal(ticker_data.get("ask"))
    if last:
        return last
    return (bid + ask) / 2 if bid and ask else None
