"""The Alpaca adapter: orders over alpaca-py's REST client, order events over its
`trade_updates` stream, quotes from its market-data client.

alpaca-py is synchronous (`requests`) and sets no request timeout; every call here runs in a
thread (`asyncio.to_thread`) on a session that has one (`account.timeout`), and its blind
retries of 429/504 — a POST included — are turned off: a submit whose answer is lost is settled
by looking its client order id up, never by sending it again.

Alpaca names the legs of a bracket itself (its own client order ids); this adapter answers for
them under the ids the engine gave the take-profit and stop-loss (see
`tradepipe.core.ids.sibling_id`).
Replacing a bracket leg is Alpaca's own PATCH, which keeps the leg's one-cancels-other link.

This module does the talking; beside it: `transport` (calls, their deadline and errors),
`lookup` (orders read and found again, the bookkeeping), `options` (option chains and
contracts), and the translation, which has no I/O: `orders` (an order as Alpaca takes it),
`parsing` (its answers read as ours), `fills` (fills out of its cumulative quantities).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    CryptoLatestTradeRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
)
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus

from tradepipe.brokers.alpaca.lookup import OrderLookup
from tradepipe.brokers.alpaca.options import fetch_chain, fetch_contract
from tradepipe.brokers.alpaca.orders import (
    asset_rules,
    check_bracket,
    check_order,
    check_replace,
    to_alpaca_replace,
    to_alpaca_request,
)
from tradepipe.brokers.alpaca.parsing import (
    canonical_ticker as alpaca_ticker,
)
from tradepipe.brokers.alpaca.parsing import (
    decimal,
    is_crypto,
    is_option,
    parse_time,
    position_symbol,
    quote_mid,
    to_position,
    trade_price,
)
from tradepipe.brokers.alpaca.stream import STREAM_PATH, Stream, TradeUpdates, stream_url_for
from tradepipe.brokers.alpaca.transport import Calls, Duplicate, NotFound, without_retries
from tradepipe.brokers.base import (
    AccountSummary,
    Capabilities,
    InstrumentRules,
    OrderListener,
    StreamHealth,
)
from tradepipe.brokers.reporting import Reporter, logged
from tradepipe.core.model import (
    OrderRequest,
    OrderState,
    OrderType,
    Position,
    TimeInForce,
)
from tradepipe.core.options import OptionContract
from tradepipe.errors import BrokerError, OrderRejected

log = logging.getLogger(__name__)

__all__ = ["CAPABILITIES", "STREAM_PATH", "AlpacaBroker", "Stream", "stream_url_for"]

CAPABILITIES = Capabilities(
    order_types=frozenset(OrderType),
    time_in_force=frozenset(TimeInForce),
    brackets=True,
    fractional=True,
    short_selling=True,
    quotes=True,
    marks_from_signals=False,
    lot_size=Decimal(1),
    # `option_chain` lists the contracts the engine selects from (SPEC §15). No futures here.
    options=True,
)


# -- the adapter -------------------------------------------------------------------------------


class AlpacaBroker:
    def __init__(
        self,
        name: str,
        trading: TradingClient,
        stocks: StockHistoricalDataClient,
        crypto: CryptoHistoricalDataClient,
        stream_factory: Callable[..., Stream],
        *,
        clock: Callable[[], datetime],
        timeout: float,
    ) -> None:
        self.name = name
        self.capabilities = CAPABILITIES
        self._trading = trading
        self._stocks = stocks
        self._crypto = crypto
        self._clock = clock
        self._timeout = timeout
        self._reporter = Reporter(key=lambda state: (state.status, state.filled_quantity))
        self._updates = TradeUpdates(
            name,
            stream_factory,
            clock=clock,
            timeout=timeout,
            on_update=self._on_trade_update,
            on_listening=lambda: self._spawn(self._resync()),
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rules: dict[str, InstrumentRules] = {}
        self._call = Calls(name, timeout).call
        self._lookup = OrderLookup(trading, self._call, clock)

    @classmethod
    def from_config(
        cls, name: str, account: Any, credentials: Any, clock: Callable[[], datetime]
    ) -> AlpacaBroker:
        timeout = float(account.timeout)
        key, secret = credentials.key, credentials.secret
        base = str(account.base_url).rstrip("/") if account.base_url else None
        data = str(account.data_url).rstrip("/") if account.data_url else None
        stream_url = str(account.stream_url) if account.stream_url else stream_url_for(base)
        trading = TradingClient(key, secret, paper=account.paper, raw_data=True, url_override=base)
        stocks = StockHistoricalDataClient(key, secret, raw_data=True, url_override=data)
        crypto = CryptoHistoricalDataClient(key, secret, raw_data=True, url_override=data)

        def stream(**hooks: Any) -> Stream:
            return Stream(
                key, secret, paper=account.paper, raw_data=True, url_override=stream_url, **hooks
            )

        return cls(
            name,
            without_retries(trading, timeout),
            without_retries(stocks, timeout),
            without_retries(crypto, timeout),
            stream,
            clock=clock,
            timeout=timeout,
        )

    def canonical_ticker(self, ticker: str) -> str:
        return alpaca_ticker(ticker)

    # -- life cycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Check the credentials over REST, then start the stream and wait (up to `timeout`)
        for it to listen. A stream that does not is no failure: it keeps trying, reports
        itself down (`stream_health`), and the engine polls the working orders meanwhile."""
        await self._call("reading the account", self._trading.get_account)
        if self._updates.start():
            await self._recover_legs()
        await self._updates.wait()

    @property
    def stream_health(self) -> StreamHealth:
        return self._updates.health

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await self._updates.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in (self._trading, self._stocks, self._crypto):
            client._session.close()  # pooled sockets (the session stays usable on reconnect)

    def on_disconnect(self, listener: Callable[[str], None]) -> None:
        """Nothing to watch: each call connects (a stream reconnects by itself and re-syncs)."""

    def listen(self, listener: OrderListener) -> None:
        self._reporter.listen(logged(listener, f"alpaca account {self.name}"))

    # -- the stream ----------------------------------------------------------------------------

    async def _on_trade_update(self, message: dict) -> None:
        """One `trade_updates` event (raw: string decimals) → the listener, ticker set."""
        try:
            data = message.get("data") or {}
            order = data.get("order") or {}
            at = parse_time(data.get("timestamp")) or self._clock()
            self._lookup.seen_at = max(self._lookup.seen_at or at, at)
            if data.get("event") in ("fill", "partial_fill"):
                self._lookup.learn_fill(order, data, at)
            state = self._lookup.state(order)
        except Exception:  # one odd event must not end the stream
            log.exception("alpaca account %s: unreadable trade update %r", self.name, message)
            return
        self._report(state, always=True)

    def _report(self, state: OrderState, *, always: bool = False) -> None:
        self._reporter.report(state, always=always)

    async def _resync(self) -> None:
        """After a (re)connect: what changed while the stream was away, over REST."""
        try:
            for order in await self._lookup.missed():
                self._report(self._lookup.state(order))
        except BrokerError as e:
            log.error("alpaca account %s: re-sync after reconnect failed: %s", self.name, e)
        except Exception:
            log.exception("alpaca account %s: re-sync after reconnect failed", self.name)

    async def _recover_legs(self) -> None:
        """After a restart: our ids of the bracket legs Alpaca named (recent orders)."""
        try:
            await self._lookup.list_orders(QueryOrderStatus.ALL)
        except BrokerError as e:
            log.warning("alpaca account %s: could not list recent orders: %s", self.name, e)

    async def get_order(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> OrderState | None:
        order = await self._lookup.find(client_order_id)
        return None if order is None else self._lookup.state(order)

    async def open_orders(self, ticker: str | None = None) -> list[OrderState]:
        orders = await self._lookup.list_orders(QueryOrderStatus.OPEN, ticker=ticker)
        states = [self._lookup.state(o) for o in orders]
        return [s for s in states if not s.status.is_final and ticker in (None, s.ticker)]

    async def position(self, ticker: str) -> Position:
        try:
            found = await self._call(
                "reading a position", self._trading.get_open_position, position_symbol(ticker)
            )
        except NotFound:
            return Position(ticker, Decimal(0))
        return to_position(found, ticker)

    async def positions(self) -> list[Position]:
        found = await self._call("reading positions", self._trading.get_all_positions)
        return [to_position(p) for p in found]

    async def account(self) -> AccountSummary:
        found = await self._call("reading the account", self._trading.get_account)
        return AccountSummary(
            equity=decimal(found.get("equity")) or Decimal(0),
            cash=decimal(found.get("cash")) or Decimal(0),
            buying_power=decimal(found.get("buying_power")) or Decimal(0),
        )

    async def instrument(self, ticker: str) -> InstrumentRules:
        """Crypto: the asset's increments; stocks: SPEC §7; an option: whole contracts worth
        its `size` in shares (100, SPEC §12), refused unless Alpaca lists it."""
        if is_option(ticker) and ticker not in self._rules:
            self._rules[ticker] = await fetch_contract(self._call, self._trading, ticker)
        if is_option(ticker):
            return self._rules[ticker]
        if not is_crypto(ticker):
            return InstrumentRules()
        if ticker not in self._rules:
            try:
                asset = await self._call(
                    "reading an asset", self._trading.get_asset, position_symbol(ticker)
                )
            except NotFound:
                raise OrderRejected(f"{ticker}: Alpaca has no such asset") from None
            self._rules[ticker] = asset_rules(asset)
        return self._rules[ticker]

    async def quote(self, ticker: str) -> Decimal | None:
        """The latest trade's price (stocks: else the quote's mid); None if there is none or
        the data feed cannot be read (planning then uses the signal's price)."""
        try:
            if is_crypto(ticker):
                trades = await self._call(
                    "reading a quote",
                    self._crypto.get_crypto_latest_trade,
                    CryptoLatestTradeRequest(symbol_or_symbols=ticker),
                )
                return trade_price(trades, ticker)
            trades = await self._call(
                "reading a quote",
                self._stocks.get_stock_latest_trade,
                StockLatestTradeRequest(symbol_or_symbols=ticker),
            )
            price = trade_price(trades, ticker)
            if price is not None:
                return price
            quotes = await self._call(
                "reading a quote",
                self._stocks.get_stock_latest_quote,
                StockLatestQuoteRequest(symbol_or_symbols=ticker),
            )
            return quote_mid(quotes, ticker)
        except (BrokerError, ValueError) as e:
            log.warning("alpaca account %s: no quote for %s: %s", self.name, ticker, e)
            return None

    async def option_chain(self, underlying: str) -> list[OptionContract]:
        """Tradable contracts expiring from today (`options.fetch_chain`), sizes kept."""
        contracts, rules = await fetch_chain(
            self._call, self._trading, alpaca_ticker(underlying), self._clock().date()
        )
        self._rules.update(rules)
        return contracts

    async def observe_price(self, ticker: str, price: Decimal) -> list[OrderState]:
        return []  # Alpaca's marks are its own

    # -- orders --------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> OrderState:
        (state,) = await self.submit_bracket(request, ())
        return state

    async def submit_bracket(
        self, entry: OrderRequest, children: Sequence[OrderRequest]
    ) -> list[OrderState]:
        for order in (entry, *children):
            check_order(order, await self.instrument(order.ticker))
        if children:
            check_bracket(entry, children)
        alpaca_request = to_alpaca_request(entry, children)
        try:
            placed = await self._call(
                "submitting an order", self._trading.submit_order, alpaca_request
            )
        except Duplicate:
            # Sent before (a retry, a restart): answer what the broker has; send nothing.
            placed = await self._lookup.found_again(entry.client_order_id, self.name)
        except NotFound as e:
            raise OrderRejected(str(e)) from None
        return self._lookup.placed(placed, children)

    async def replace(self, client_order_id: str, request: OrderRequest) -> OrderState:
        """Alpaca's PATCH: a new order (our new id) in the old one's place, bracket link kept.
        It changes quantity, prices and time in force, never the order type or side."""
        already = await self._lookup.find(request.client_order_id)
        if already is not None:
            return self._lookup.state(already)
        check_order(request, await self.instrument(request.ticker))
        old = await self._lookup.find(client_order_id)
        if old is None:
            raise OrderRejected(f"alpaca: no order {client_order_id} to replace")
        check_replace(client_order_id, self._lookup.state(old), old.get("status"), request)
        patch = to_alpaca_replace(request)
        try:
            new = await self._call(
                "replacing an order", self._trading.replace_order_by_id, old["id"], patch
            )
        except Duplicate:
            new = await self._lookup.found_again(request.client_order_id, self.name)
        except NotFound:
            raise OrderRejected(f"alpaca: no order {client_order_id} to replace") from None
        return self._lookup.state(new)

    async def cancel(self, client_order_id: str, *, ticker: str | None = None) -> OrderState | None:
        """Cancel (Alpaca answers 204); an order no longer cancelable answers its state."""
        order = await self._lookup.find(client_order_id)
        if order is None:
            return None
        try:
            await self._call("canceling an order", self._trading.cancel_order_by_id, order["id"])
        except OrderRejected as e:  # 422: filled or canceled already
            log.info("alpaca: %s not canceled: %s", client_order_id, e)
        except NotFound:
            return None
        found = await self._call(
            "reading a canceled order", self._trading.get_order_by_id, order["id"]
        )
        state = self._lookup.state(found)
        return replace(state, client_order_id=client_order_id)
