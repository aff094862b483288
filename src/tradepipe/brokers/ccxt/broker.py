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

This module does the talking and the bookkeeping; the translation has no I/O and lives beside
it: `ccxt_orders` (orders both ways), `ccxt_markets` (markets, their rules, holdings),
`ccxt_budget` (the request weight budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ccxt.base import errors as ccxt_errors

from tradepipe.brokers.base import AccountSummary, Capabilities, InstrumentRules, OrderListener
from tradepipe.brokers.ccxt.exchange import (
    VERIFIED,
    exchange_words,
    make_exchange,
    point_at,
    shared_budget,
)
from tradepipe.brokers.ccxt.markets import (
    check_min_notional,
    check_min_quantity,
    check_written,
    find_market,
    instrument_rules,
    market_ticker,
    price_of,
    spot_holdings,
    swap_position,
)
from tradepipe.brokers.ccxt.orders import (
    TIME_IN_FORCE,
    covers,
    decimal,
    order_args,
    status_of,
    to_fills,
    to_order_state,
    trades_of,
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
    Side,
)
from tradepipe.errors import BrokerError, BrokerUnavailable, OrderRejected

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

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        exchange_id = self.exchange.id
        try:
            yield
        except ccxt_errors.AuthenticationError as e:  # PermissionDenied too; never the key
            raise BrokerError(
                f"account {self.name}: {exchange_id} refused the credentials"
                f" ({exchange_words(e, exchange_id)})"
            ) from e
        except ccxt_errors.NetworkError as e:  # timeouts, 5xx, rate limits: outcome unknown
            raise BrokerUnavailable(
                f"{exchange_id} ({self.name}): {type(e).__name__}: {exchange_words(e, exchange_id)}"
            ) from e
        except ccxt_errors.ExchangeError as e:  # the exchange answered no, in its words
            raise OrderRejected(f"{exchange_id}: {exchange_words(e, exchange_id)}") from e
        except ccxt_errors.BaseError as e:  # an answer ccxt could not read: outcome unknown
            raise BrokerUnavailable(f"{exchange_id} ({self.name}): {e}") from e

    # -- life cycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        with self._errors():
            await self.exchange.load_markets()
            await self.exchange.fetch_balance()  # proves the credentials
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_forever(), name=f"poll {self.name}")

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
            lambda value, field: self._on_step(value, field, market, True),
        )
        amount = await self._checked_amount(request, market, price or params.get("triggerPrice"))
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

    def _on_step(
        self, value: Decimal, field: str, market: dict[str, Any], is_price: bool
    ) -> Decimal:
        """The value as the exchange's own precision function writes it; one it would change is
        refused, so that what the journal holds is what was sent."""
        symbol = market["symbol"]
        try:
            with self._errors():
                if is_price:
                    written = self.exchange.price_to_precision(symbol, float(value))
                else:
                    written = self.exchange.amount_to_precision(symbol, float(value))
        except OrderRejected as e:
            raise OrderRejected(f"{field} {value} of {symbol}: {e}") from None
        return check_written(
            value,
            written,
            field=field,
            is_price=is_price,
            market=market,
            precision_mode=self.exchange.precisionMode,
            exchange_id=self.exchange.id,
        )

    async def _checked_amount(
        self, request: OrderRequest, market: dict[str, Any], price: float | None
    ) -> float:
        """The quantity, checked against the market's minimums. (A spot sell beyond the free
        balance is the exchange's to refuse: `capabilities.short_selling` keeps planning from
        asking for one, and Binance's own words say why.)"""
        quantity = self._on_step(request.quantity, "quantity", market, False)
        rules = await self.instrument(request.ticker)
        check_min_quantity(quantity, rules, market["symbol"], self.exchange.id)
        if rules.min_notional is not None:
            reference = decimal(price) or await self.quote(request.ticker)
            check_min_notional(quantity, reference, rules, market, self.exchange.id)
        return float(quantity)

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
        fills = await self._fills_of(order, cid, symbol, filled, status)
        if status.is_open or status is OrderStatus.ACCEPTED:
            self._watch[cid] = symbol
        else:
            self._watch.pop(cid, None)
        self._symbols[cid] = symbol
        return to_order_state(order, cid, self._ticker(symbol), fills, self.exchange.id)

    async def _fills_of(
        self,
        order: dict[str, Any],
        cid: str,
        symbol: str,
        filled: Decimal,
        status: OrderStatus,
    ) -> tuple[Fill, ...]:
        """The order's trades with the exchange's trade ids (the journal dedupes on them)."""
        if filled <= 0:
            return ()
        cached = self._fills.get(cid)
        if cached is not None and cached[0] == filled:
            return cached[1]
        side = Side(order["side"])
        trades = trades_of(order)
        if not covers(trades, filled) and self.exchange.has.get("fetchOrderTrades"):
            # the order's answer did not carry all its trades (Binance: only a create does)
            with self._errors():
                trades = await self.exchange.fetch_order_trades(order["id"], symbol)
        fills = to_fills(
            order,
            trades,
            client_order_id=cid,
            ticker=self._ticker(symbol),
            side=side,
            market_id=self.exchange.markets[symbol]["id"],
            filled=filled,
            status=status,
            now=self.clock(),
        )
        self._fills[cid] = (filled, fills)
        return fills

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

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            if not self._watch or self._reporter.listener is None:
                continue
            try:
                await self.poll()
            except BrokerError as e:  # the next round tries again; nothing is lost meanwhile
                log.warning("%s: polling orders: %s", self.name, e)
            except Exception:
                log.exception("%s: polling orders", self.name)

    async def poll(self) -> None:
        """One round: report every watched order whose status or fills changed. A market or
        an order that cannot be read this round is logged and tried again next round; it never
        stops the others from being reported (an unreported entry fill leaves its emulated
        stop-loss unplaced)."""
        for symbol in sorted(set(self._watch.values())):
            try:
                with self._errors():
                    listed = await self.exchange.fetch_open_orders(symbol)
            except BrokerError as e:
                log.warning("%s: polling %s: %s", self.name, symbol, e)
                continue
            still_open = set()
            for order in listed:
                cid = order.get("clientOrderId")
                if cid in self._watch:
                    still_open.add(cid)
                    await self._poll_one(cid, symbol, order)
            for cid in [c for c, s in self._watch.items() if s == symbol and c not in still_open]:
                await self._poll_one(cid, symbol, None)

    async def _poll_one(self, cid: str, symbol: str, order: dict[str, Any] | None) -> None:
        try:
            if order is not None:
                self._report(await self._state(order, cid, symbol))
                return
            state = await self._look_up(cid, symbol)
        except Exception as e:  # one unreadable answer must not silence the rest
            log.warning("%s: polling order %s: %s", self.name, cid, e)
            return
        if state is None:  # never reached the exchange: the engine settles it by id
            self._watch.pop(cid, None)
        else:
            self._report(state)

    def _report(self, state: OrderState) -> None:
        self._reporter.report(state)

    # -- account -------------------------------------------------------------------------------

    async def position(self, ticker: str) -> Position:
        market = await self._market(ticker)
        if self.market_type == "swap":
            with self._errors():
                found = await self.exchange.fetch_positions([market["symbol"]])
            held = [
                swap_position(p, self._ticker(p["symbol"]))
                for p in found
                if p.get("symbol") == market["symbol"]
            ]
            none = Position(self._ticker(market["symbol"]), Decimal(0))
            return next((p for p in held if p.quantity), none)
        with self._errors():
            balance = await self.exchange.fetch_balance()
        total = decimal(balance.get(market["base"], {}).get("total")) or Decimal(0)
        # a spot holding has no entry price
        return Position(self._ticker(market["symbol"]), total, None)

    async def positions(self) -> list[Position]:
        with self._errors():
            await self.exchange.load_markets()
            if self.market_type == "swap":
                found = await self.exchange.fetch_positions()
                held = [swap_position(p, self._ticker(p["symbol"])) for p in found]
                return [p for p in held if p.quantity]
            balance = await self.exchange.fetch_balance()
        return self._spot_positions(balance)

    def _spot_positions(self, balance: dict[str, Any]) -> list[Position]:
        holdings = spot_holdings(balance.get("total") or {}, self._tickers, self.exchange.markets)
        return [Position(self._ticker(symbol), total, None) for symbol, total in holdings]

    async def quote(self, ticker: str) -> Decimal | None:
        market = await self._market(ticker)
        with self._errors():
            ticker_data = await self.exchange.fetch_ticker(market["symbol"])
        return price_of(ticker_data)

    async def account(self) -> AccountSummary:
        with self._errors():
            await self.exchange.load_markets()
            balance = await self.exchange.fetch_balance()
        quote = next(iter(s.split("/")[1] for s in self._tickers), "USDT")
        cash = decimal((balance.get(quote) or {}).get("total")) or Decimal(0)
        free = decimal((balance.get(quote) or {}).get("free")) or Decimal(0)
        equity = cash
        for position in self._spot_positions(balance):  # spot only: swap is refused at start
            price = await self.quote(position.ticker)
            equity += position.quantity * (price or Decimal(0))
        return AccountSummary(equity=equity, cash=cash, buying_power=free)

    async def observe_price(self, ticker: str, price: Decimal) -> list[OrderState]:
        return []
