"""Tickers: the one spelling of an instrument that most brokers share.

Pure. A TradingView alert may name one stock `NASDAQ:AAPL` or `AAPL`; each broker declares its
spelling (`Broker.canonical_ticker`), and this is the default one.
"""

from __future__ import annotations

import re
from functools import lru_cache

# TradingView's exchange prefix ("NASDAQ:", "BINANCE:", "CME_MINI:"): words before a colon (all
# of them, as IB reads a ticker). ccxt's "BTC/USDT:USDT" has no prefix: its colon names the
# settle currency.
_EXCHANGE_PREFIX = re.compile(r"^(?:[A-Z][A-Z0-9_]*:(?=\S))+")
# An OCC option symbol, with or without the spaces TradingView or a person may put in.
_OCC_OPTION = re.compile(r"^(?P<root>[A-Z]{1,6})\s*(?P<contract>[0-9]{6}[CP][0-9]{8})$")


# Pure and asked tens of times per signal (each lane, plan and paper book names the instrument
# through it) for the few tickers a trader uses: the answers are kept.
@lru_cache(maxsize=4096)
def default_canonical_ticker(ticker: str) -> str:
    """The spelling most brokers share: without TradingView's `EXCHANGE:` prefix, upper case,
    an OCC option as root, one space, contract ("SPY 261218C00600000"). The same answer as
    Interactive Brokers' `ibkr_translation.canonical` for every ticker IB can trade."""
    text = _EXCHANGE_PREFIX.sub("", ticker.strip().upper(), count=1).strip()
    if option := _OCC_OPTION.match(text):
        return f"{option['root']} {option['contract']}"
    return text
