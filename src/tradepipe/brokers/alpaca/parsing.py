"""Alpaca's answers read as ours: its order statuses, tickers and position symbols, timestamps,
positions, prices and order states (raw JSON: alpaca-py runs with `raw_data=True`).

No I/O: the adapter, `tradepipe.brokers.alpaca.broker`, does the talking and keeps the bookkeeping.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tradepipe.core.model import Fill, OrderRole, OrderState, OrderStatus, OrderType, Position, Side
from tradepipe.core.tickers import default_canonical_ticker

# Alpaca's order statuses → ours (docs.alpaca.markets "Order Lifecycle").
STATUS = {
    "pending_new": OrderStatus.SUBMITTED,
    "new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "pending_review": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "done_for_day": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
# What the status alone does not say (a held leg is accepted, waiting for its entry).
STATUS_WORDS = {
    "held": "held until the entry fills",
    "done_for_day": "done for the day",
    "suspended": "suspended by the broker",
    "stopped": "stopped: a fill is guaranteed",
    "pending_cancel": "cancel requested",
    "pending_replace": "replace requested",
}
OPTION_SYMBOL = re.compile(r"^[A-Z]{1,6}\d{6}[CP]\d{8}$")
CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC", "ETH")
# A crypto pair written without its slash, as TradingView names it ("BTCUSD", "ETHUSDT"): six
# characters or more, which no US stock symbol has (at most five), ending in a quote currency.
_SLASHLESS_PAIR = re.compile(rf"^[A-Z][A-Z0-9]+(?:{'|'.join(CRYPTO_QUOTES)})$")


def is_crypto(ticker: str) -> bool:
    return "/" in ticker


def is_option(ticker: str) -> bool:
    return OPTION_SYMBOL.match(ticker) is not None


def canonical_ticker(ticker: str) -> str:
    """Alpaca's spelling of an instrument, the one its orders carry: a stock "AAPL", an option
    its OCC symbol ("SPY261218C00600000"), a crypto pair with its slash ("BTC/USD", also from
    TradingView's "COINBASE:BTCUSD")."""
    text = default_canonical_ticker(ticker)
    if is_option(compact := text.replace(" ", "")):
        return compact
    if "/" not in text and len(text) >= 6 and _SLASHLESS_PAIR.match(text):
        return ticker_of(text, "crypto")
    return text


def position_symbol(ticker: str) -> str:
    """Alpaca addresses a crypto position or asset without the slash (BTC/USD → BTCUSD)."""
    return ticker.replace("/", "")


def ticker_of(symbol: str, asset_class: str | None) -> str:
    """Positions name crypto pairs without the slash; orders (and we) with it."""
    if asset_class == "crypto" and "/" not in symbol:
        for quote in CRYPTO_QUOTES:
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return f"{symbol[: -len(quote)]}/{quote}"
    return symbol


def is_alpaca_named(client_order_id: str) -> bool:
    """Alpaca names bracket legs with uuids (36 characters); ours have at most 32."""
    return len(client_order_id) > 32


def leg_role(leg: dict[str, Any]) -> OrderRole:
    kind = leg.get("type") or leg.get("order_type")
    return OrderRole.TAKE_PROFIT if kind == "limit" else OrderRole.STOP_LOSS


def decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def parse_time(value: Any) -> datetime | None:
    """Alpaca's timestamps carry nanoseconds and a Z; Python takes microseconds."""
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    found = re.match(r"^(.*?\.\d{6})\d*(.*)$", text)
    if found:
        text = found[1] + found[2]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_position(raw: dict[str, Any], ticker: str | None = None) -> Position:
    """One of Alpaca's positions; `ticker` as the engine asked for it, else from its symbol."""
    quantity = decimal(raw.get("qty")) or Decimal(0)
    if raw.get("side") == "short" and quantity > 0:
        quantity = -quantity
    return Position(
        ticker or ticker_of(str(raw["symbol"]), raw.get("asset_class")),
        quantity,
        decimal(raw.get("avg_entry_price")),
    )


def to_order_state(
    order: dict[str, Any], client_order_id: str, fills: tuple[Fill, ...]
) -> OrderState:
    """An Alpaca order (raw JSON) as our OrderState, under our id for it, with its fills."""
    status_word = str(order.get("status"))
    kind = order.get("type") or order.get("order_type")
    message = STATUS_WORDS.get(status_word)
    if status_word == "replaced":
        message = "replaced"
    return OrderState(
        client_order_id=client_order_id,
        status=STATUS.get(status_word, OrderStatus.UNKNOWN),
        filled_quantity=decimal(order.get("filled_qty")) or Decimal(0),
        average_fill_price=decimal(order.get("filled_avg_price")),
        broker_order_id=order.get("id"),
        message=message,
        fills=fills,
        ticker=str(order.get("symbol")),
        side=Side(order["side"]) if order.get("side") else None,
        quantity=decimal(order.get("qty")),
        order_type=OrderType(kind) if kind in set(OrderType) else None,
        limit_price=decimal(order.get("limit_price")),
        stop_price=decimal(order.get("stop_price")),
    )


def trade_price(answer: dict[str, Any], ticker: str) -> Decimal | None:
    """The price of a latest-trade answer (`{ticker: {"p": …}}`); None if it has none."""
    return decimal((answer.get(ticker) or {}).get("p"))


def quote_mid(answer: dict[str, Any], ticker: str) -> Decimal | None:
    """The middle of a latest-quote answer's bid and ask; None without both."""
    quote = answer.get(ticker) or {}
    bid, ask = decimal(quote.get("bp")), decimal(quote.get("ap"))
    return (bid + ask) / 2 if bid and ask else None
