"""What a ccxt account holds: positions (swap) or balances read as positions (spot), a market's
last price, and the account's summary in its quote currency."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.brokers.base import AccountSummary
from tradepipe.brokers.ccxt.markets import price_of, spot_holdings, swap_position
from tradepipe.brokers.ccxt.orders import decimal
from tradepipe.core.model import Position

if TYPE_CHECKING:
    from tradepipe.brokers.ccxt.broker import CcxtBroker


async def position(broker: CcxtBroker, ticker: str) -> Position:
    market = await broker._market(ticker)
    if broker.market_type == "swap":
        with broker._errors():
            found = await broker.exchange.fetch_positions([market["symbol"]])
        held = [
            swap_position(p, broker._ticker(p["symbol"]))
            for p in found
            if p.get("symbol") == market["symbol"]
        ]
        none = Position(broker._ticker(market["symbol"]), Decimal(0))
        return next((p for p in held if p.quantity), none)
    with broker._errors():
        balance = await broker.exchange.fetch_balance()
    total = decimal(balance.get(market["base"], {}).get("total")) or Decimal(0)
    # a spot holding has no entry price
    return Position(broker._ticker(market["symbol"]), total, None)


async def positions(broker: CcxtBroker) -> list[Position]:
    with broker._errors():
        await broker.exchange.load_markets()
        if broker.market_type == "swap":
            found = await broker.exchange.fetch_positions()
            held = [swap_position(p, broker._ticker(p["symbol"])) for p in found]
            return [p for p in held if p.quantity]
        balance = await broker.exchange.fetch_balance()
    return spot_positions(broker, balance)


def spot_positions(broker: CcxtBroker, balance: dict[str, Any]) -> list[Position]:
    holdings = spot_holdings(balance.get("total") or {}, broker._tickers, broker.exchange.markets)
    return [Position(broker._ticker(symbol), total, None) for symbol, total in holdings]


async def quote(broker: CcxtBroker, ticker: str) -> Decimal | None:
    market = await broker._market(ticker)
    with broker._errors():
        ticker_data = await broker.exchange.fetch_ticker(market["symbol"])
    return price_of(ticker_data)


async def summary(broker: CcxtBroker) -> AccountSummary:
    with broker._errors():
        await broker.exchange.load_markets()
        balance = await broker.exchange.fetch_balance()
    currency = next(iter(s.split("/")[1] for s in broker._tickers), "USDT")
    cash = decimal((balance.get(currency) or {}).get("total")) or Decimal(0)
    free = decimal((balance.get(currency) or {}).get("free")) or Decimal(0)
    equity = cash
    for position in spot_positions(broker, balance):  # spot only: swap is refused at start
        price = await quote(broker, position.ticker)
        equity += position.quantity * (price or Decimal(0))
    return AccountSummary(equity=equity, cash=cash, buying_power=free)
