"""Crypto exchanges through ccxt's async client: spot markets, and perpetual swaps where the
exchange has them (`market_type = "swap"`).

What the exchange cannot do is said here once:

- **No order stream** (ccxt without "pro" has none): a small poller, started at `connect`, looks
  at the open orders of the markets where this process placed or saw an order, about once a
  second while there are any; an order that left the open list is fetched and reported to the
  listener with its final state and its trades.
- **No brackets**: `capabilities.brackets` is False, so the engine places the take-profit and
  the stop after the entry fills and cancels the survivor. On spot every open sell reserves its
  base currency, so the second leg of such a pair meets "insufficient balance"
  (tests/test_ccxt.py::test_engine_emulated_bracket_on_binance_spot); an exchange OCO order
  list would be the fix.
- **`replace` is cancel + create, not atomic**: the old order is canceled first; if the create
  then fails, the old one stays canceled and the error is raised (the engine journals it).
- **Time in force**: GTC, IOC, FOK. Crypto has no trading day, and DAY is not quietly sent as
  GTC: a crypto subscription sets `time_in_force = "gtc"`. A market order is taken with DAY
  (it fills or fails at once; tradepipe's flatten sends DAY). **Trailing stops** are refused (their
  trail cannot be expressed the same way on every exchange).
- **Quantities and prices are never changed**: one off the market's step or tick is refused
  naming the step, so the journal's record equals what was sent; minimum quantity and notional
  are checked before sending.
- **`get_order` needs the market** (ccxt looks orders up per symbol): ids this process placed
  or saw are mapped to their symbol; others are searched among the markets this process used,
  those with open orders and those with balances. When none has it and the market was never
  known, the answer is `BrokerUnavailable` (ask again later), never "not found".
- **Request weight**: ccxt prices every request (`enableRateLimit`, its per-endpoint costs),
  and this account's `RequestBudget` (ccxt_budget.py) decides when it is sent, in place of
  ccxt's throttler, which never refills while the process is idle. The exchange counts weight
  per IP, not per key: accounts of one exchange at the same API address share one budget in
  the daemon (two Binance accounts together stay within Binance's 6,000 a minute).

This module does the talking and the bookkeeping; beside it: `poller` (the order poller),
`checks` (an order's numbers), `fills` (an order's trades as fills), `holdings` (positions,
balances, prices), and the translation, which has no I/O: `orders` (orders both ways),
`markets` (markets, their rules, holdings), `budget` (the request weight budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ccxt.base import errors as ccxt_errors

from tradepipe.brokers.base import AccountSummary, Capabilities, InstrumentRules, OrderListener
from tradepipe.brokers.ccxt import checks, holdings, poller
from tradepipe.brokers.ccxt.exchange import (
    VERIFIED,
    errors,
    exchange_words,
    make_exchange,
    point_at,
    shared_budget,
)
from tradepipe.brokers.ccxt.fills import fills_of
from tradepipe.brokers.ccxt.markets import (
    find_market,
    instrument_rules,
    market_ticker,
)
from tradepipe.brokers.ccxt.orders import (
    TIME_IN_FORCE,
    order_args,
    status_of,
    to_order_state,
)
from tradepipe.brokers.reporting import Reporter
from tradepipe.config.credentials import Credentials
from tradepipe.core.model import (
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
)
from tradepipe.errors import BrokerUnavailable, OrderRejected

log = logging.getLogger(__name__)

__all__ = ["VERIFIED", "CcxtBroker", "exchange_words", "point_at"]


class CcxtBroker:
    def __init__(
        self,
        name: str,
        exchange: Any,
        *,
        market_type: str,
        clock: Callable[[], datetime],
        poll_interval: float = 1.0,
    ) -> None:
        self.name = name
        self.exchange = exchange
        self.market_type = market_type
        self.clock = clock
        self.poll_interval = poll_interval
        has = exchange.has
        types = {OrderType.MARKET, OrderType.LIMIT}
        if has.get("createTriggerOrder") or has.get("createStopOrder"):
            types.add(OrderType.STOP)
        if has.get("createTriggerOrder") or has.get("createStopLimitOrder"):
            types.add(OrderType.STOP_LIMIT)
        self.capabilities = Capabilities(
            order_types=frozenset(types),
            time_in_force=frozenset(TIME_IN_FORCE),
            brackets=False,
            concurrent_exits=market_type == "swap",
            fractional=True,
            short_selling=market_type == "swap",
            quotes=True,
            lot_size=Decimal("0.00000001"),
        )
        self._poller: asyncio.Task[None] | None = None
        self._symbols: dict[str, str] = {}  # client order id → ccxt symbol
        self._tickers: dict[str, str] = {}  # markets used: ccxt symbol → the ticker first asked
        self._watch: dict[str, str] = {}  # open orders placed or seen: client id → symbol
        # Reported once per change, and only once the engine listens (`poll` before that
        # reports nothing and remembers nothing).
        self._reporter = Reporter(
            key=lambda state: (state.status, state.filled_quantity), remember_unheard=False
        )
        self._fills: dict[str, tuple[Decimal, tuple[Fill, ...]]] = {}
        # ccxt awaits `exchange.throttle(cost)` before every REST request (`enableRateLimit`):
        # its own throttler makes an order wait out earlier requests however long ago they were
        # sent; this budget refills while idle (ccxt_budget.py).
        self.budget = shared_budget(exchange)
        exchange.throttle = self._throttle

    async def _throttle(self, cost: float | None = None) -> None:
        delay = self.budget.reserve(1.0 if cost is None else float(cost), time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)

    @classmethod
    def from_config(
        cls, name: str, account: Any, credentials: Credentials | None, clock: Callable[[], datetime]
    ) -> CcxtBroker:
        exchange = make_exchange(name, account, credentials)
        return cls(name, exchange, market_type=account.market_type, clock=clock)

    # -- errors, once ------------------------------------------------------------------------

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return errors(self.name, self.exchange.id)

    # -- life cycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        with self._errors():
            await self.exchange.load_markets()
            await self.exchange.fetch_balance()  # proves the credentials
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(poller.poll_forever(self), name=f"poll {self.name}")

    def on_disconnect(self, listener: Callable[[str], None]) -> None:
        """Nothing to watch: each call connects (a stream reconnects by itself and re-syncs)."""

    def listen(self, listener: OrderListener) -> None:
        self._reporter.listen(listener)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await self.exchange.close()

    # -- markets -------------------------------------------------------------------------------

    async def _market(self, ticker: str) -> dict[str, Any]:
        """The ccxt market for a TradingView ticker: "BTCUSDT", "BINANCE:BTCUSDT",
        "BTCUSDT.P" (a perpetual) or ccxt's own "BTC/USDT"."""
        with self._errors():
            await self.exchange.load_markets()
        exchange = self.exchange
        market = find_market(exchange.markets, exchange.markets_by_id, ticker, self.market_type)
        if market is None:
            raise OrderRejected(
                f'{exchange.id}: no {self.market_type} market for "{ticker}" (understood forms:'
                " BTCUSDT, BINANCE:BTCUSDT, BTC/USDT)"
            )
        self._tickers.setdefault(market["symbol"], ticker)
        return market

    def canonical_ticker(self, ticker: str) -> str:
        exchange = self.exchange
        markets, by_id = exchange.markets or {}, exchange.markets_by_id or {}
        return market_ticker(markets, by_id, ticker, self.market_type)

    def _ticker(self, symbol: str) -> str:
        """How a market is reported (positions, orders): its canonical ticker, the market id."""
        market = (self.exchange.markets or {}).get(symbol)
        return str(market["id"]) if market else symbol

    async def instrument(self, ticker: str) -> InstrumentRules:
        market = await self._market(ticker)
        return instrument_rules(market, self.exchange.precisionMode)

    # -- orders --------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> OrderState:
        market = await self._market(request.ticker)
        symbol, cid = market["symbol"], request.client_order_id
        self._symbols[cid] = symbol
        existing = await self._look_up(cid, symbol)
        if existing is not None:  # sent before: its state, and nothing is sent
            return existing
        kind, price, params = order_args(
            request,
            self.capabilities.order_types,
            self.exchange.id,
            lambda value, field: checks.on_step(self, value, field, market, True),
        )
        reference = price or params.get("triggerPrice")
        amount = await checks.checked_amount(self, request, market, reference)
        self._watch[cid] = symbol  # a lost answer is found by the poller, or settled by id
        try:
            with self._errors():
                try:
                    order = await self.exchange.create_order(
                        symbol, kind, str(request.side), amount, price, params
                    )
                except ccxt_errors.InvalidOrder as e:
                    if "Duplicate order" not in str(e):
                        raise
                    # Binance refuses an id only while that order is open: look it up.
                    found = await self._look_up(cid, symbol)
                    if found is None:
                        raise
                    return found
        except OrderRejected:
            self._watch.pop(cid, None)
            raise
        return await self._state(order, cid, symbol)

    async def _look_up(self, cid: str, symbol: str) -> OrderState | None:
        with self._errors():
            try:
                order = await self.exchange.fetch_order("", symbol, {"clientOrderId": cid})
            except ccxt_errors.OrderNotFound:
                return None
        return await self._state(order, cid, symbol)

    async def _state(self, order: dict[str, Any], cid: str, symbol: str) -> OrderState:
        """Our view of a ccxt order (by our id: a cancel's answer names the cancel request)."""
        status, filled = status_of(order)
        fills = await fills_of(self, order, cid, symbol, filled, status)
        if status.is_open or status is OrderStatus.ACCEPTED:
            self._watch[cid] = symbol
        else:
            self._watch.pop(cid, None)
        self._symbols[cid] = symbol
        return to_order_state(order, cid, self._ticker(symbol), fills, self.exchange.id)

    async def submit_bracket(
        self, entry: OrderRequest, children: Sequence[OrderRequest]
    ) -> list[OrderState]:
        raise OrderRejected(
            f"{self.exchange.id}: no native brackets here (the engine emulates them)"
        )

    async def replace(self, client_order_id: str, request: OrderRequest) -> OrderState:
        """Cancel, then create: NOT atomic. If the create fails, the old order stays canceled
        and the error is raised (the engine journals it); a new id that the exchange already has
        answers that order's state and changes nothing."""
        market = await self._market(request.ticker)
        existing = await self._look_up(request.client_order_id, market["symbol"])
        if existing is not None:
            return existing
        old = await self.get_order(client_order_id, ticker=request.ticker)
        if old is None or not (old.status.is_open or old.status is OrderStatus.ACCEPTED):
            state = "unknown" if old is None else str(old.status)
            raise OrderRejected(
                f"{self.exchange.id}: order {client_order_id} is {state}: nothing to replace"
            )
        canceled = await self.cancel(client_order_id, ticker=request.ticker)
        if canceled is None or canceled.status is not OrderStatus.CANCELED:
            state = "unknown" if canceled is None else str(canceled.status)
            raise OrderRejected(
                f"{self.exchange.id}: order {client_order_id} is {state}: nothing to replace"
            )
        return await self.submit(request)

    async def get_order(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> OrderState | None:
        symbol = self._symbols.get(client_order_id)
        if symbol is None and ticker is not None:
            symbol = (await self._market(ticker))["symbol"]
        if symbol is not None:
            return await self._look_up(client_order_id, symbol)
        # ccxt looks orders up per market; search where this order can be, sparingly.
        for symbol in await self._candidate_symbols():
            found = await self._look_up(client_order_id, symbol)
            if found is not None:
                return found
        raise BrokerUnavailable(
            f"{self.exchange.id} ({self.name}): cannot look up order {client_order_id}: its"
            " market is not known to this process yet (it looks orders up per market)"
        )

    async def _candidate_symbols(self) -> list[str]:
        symbols = list(dict.fromkeys(self._tickers))
        with self._errors():
            for order in await self.exchange.fetch_open_orders():
                symbols.append(order["symbol"])
        for position in await self.positions():
            symbols.append((await self._market(position.ticker))["symbol"])
        return list(dict.fromkeys(symbols))

    async def cancel(self, client_order_id: str, *, ticker: str | None = None) -> OrderState | None:
        symbol = self._symbols.get(client_order_id)
        if symbol is None:
            found = await self.get_order(client_order_id, ticker=ticker)
            if found is None:
                return None
            symbol = self._symbols[client_order_id]
        with self._errors():
            try:
                order = await self.exchange.cancel_order(
                    "", symbol, {"clientOrderId": client_order_id}
                )
            except ccxt_errors.OrderNotFound:  # already final (or never there): ask
                order = None
        if order is None or order.get("status") != "canceled":
            return await self._look_up(client_order_id, symbol)
        return await self._state(order, client_order_id, symbol)

    async def open_orders(self, ticker: str | None = None) -> list[OrderState]:
        symbol = None if ticker is None else (await self._market(ticker))["symbol"]
        with self._errors():
            orders = await self.exchange.fetch_open_orders(symbol)
        states = []
        for order in orders:
            cid = order.get("clientOrderId") or f"{self.exchange.id}-{order['id']}"
            states.append(await self._state(order, cid, order["symbol"]))
        return states

    # -- the poller (ccxt has no order stream) -------------------------------------------------

    async def poll(self) -> None:
        """One round of the poller (`poller.poll`)."""
        await poller.poll(self)

    def _report(self, state: OrderState) -> None:
        self._reporter.report(state)

    # -- account (`holdings`) ------------------------------------------------------------------

    async def position(self, ticker: str) -> Position:
        return await holdings.position(self, ticker)

    async def positions(self) -> list[Position]:
        return await holdings.positions(self)

    async def quote(self, ticker: str) -> Decimal | None:
        return await holdings.quote(self, ticker)

    async def account(self) -> AccountSummary:
        return await holdings.summary(self)

    async def observe_price(self, ticker: str, price: Decimal) -> list[OrderState]:
        return []
