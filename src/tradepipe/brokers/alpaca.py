"""The Alpaca adapter: orders over alpaca-py's REST client, order events over its
`trade_updates` stream, quotes from its market-data client.

alpaca-py is synchronous (`requests`) and sets no request timeout; every call here runs in a
thread (`asyncio.to_thread`) on a session that has one (`account.timeout`), and its blind
retries of 429/504 — a POST included — are turned off: a submit whose answer is lost is settled
by looking its client order id up, never by sending it again.

Alpaca names the legs of a bracket itself (its own client order ids); this adapter answers for
them under the ids the engine gave the take-profit and stop-loss (see `tradepipe.ids.sibling_id`).
Replacing a bracket leg is Alpaca's own PATCH, which keeps the leg's one-cancels-other link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    CryptoLatestTradeRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
)
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, QueryOrderStatus
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.stream import TradingStream

from tradepipe.brokers.base import AccountSummary, Capabilities, InstrumentRules, OrderListener
from tradepipe.errors import BrokerError, BrokerUnavailable, OrderRejected
from tradepipe.ids import leg_of, sibling_id
from tradepipe.orders import (
    Fill,
    OrderRequest,
    OrderRole,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from tradepipe.prices import stock_tick

log = logging.getLogger(__name__)

CAPABILITIES = Capabilities(
    order_types=frozenset(OrderType),
    time_in_force=frozenset(TimeInForce),
    brackets=True,
    fractional=True,
    short_selling=True,
    quotes=True,
    marks_from_signals=False,
    lot_size=Decimal(1),
)

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
DUPLICATE_ID = "client_order_id must be unique"
OPTION_SYMBOL = re.compile(r"^[A-Z]{1,6}\d{6}[CP]\d{8}$")
CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC", "ETH")
MAX_QTY_DECIMALS = 9
STREAM_LIMIT = 500  # orders per page of the re-sync (Alpaca's maximum)


class _NotFound(BrokerError):
    """Alpaca answered 404: the caller decides what absence means."""


class _Duplicate(BrokerError):
    """Alpaca already has an order with this client order id."""


# -- translation (pure) -------------------------------------------------------------------------


def is_crypto(ticker: str) -> bool:
    return "/" in ticker


def is_option(ticker: str) -> bool:
    return OPTION_SYMBOL.match(ticker) is not None


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


def check_prices(request: OrderRequest, rules: InstrumentRules) -> None:
    """Refuse before sending what Alpaca would refuse for its price increments: the sub-penny
    rule for stocks (≥ $1: 2 decimals, < $1: 4), 2 decimals for options, the asset's
    `price_increment` for crypto."""
    for field in ("limit_price", "stop_price", "trail_amount"):
        price = getattr(request, field)
        if price is None:
            continue
        if price <= 0:
            raise OrderRejected(f"{request.ticker}: {field} {price} must be positive")
        if is_crypto(request.ticker):
            tick, why = rules.tick_size, "the asset's price increment"
        elif is_option(request.ticker):
            tick, why = Decimal("0.01"), "options take 2 decimals"
        else:
            tick = stock_tick(price)
            why = "sub-penny rule: 2 decimals at or above $1, 4 below"
        if tick is not None and price % tick != 0:
            raise OrderRejected(
                f"{request.ticker}: {field} {price} is not a multiple of {tick} ({why})"
            )


def check_quantity(request: OrderRequest, rules: InstrumentRules) -> None:
    quantity = request.quantity
    if quantity <= 0:
        raise OrderRejected(f"{request.ticker}: quantity {quantity} must be positive")
    exponent = quantity.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_QTY_DECIMALS:
        raise OrderRejected(
            f"{request.ticker}: quantity {quantity} has more than {MAX_QTY_DECIMALS} decimals"
        )
    if is_crypto(request.ticker):
        if rules.lot_size and quantity % rules.lot_size != 0:
            raise OrderRejected(
                f"{request.ticker}: quantity {quantity} is not a multiple of {rules.lot_size}"
                " (the asset's min_trade_increment)"
            )
        if rules.min_quantity and quantity < rules.min_quantity:
            raise OrderRejected(
                f"{request.ticker}: quantity {quantity} is below {rules.min_quantity}"
                " (the asset's min_order_size)"
            )
        return
    if quantity % 1 == 0:
        return
    if is_option(request.ticker):
        raise OrderRejected(f"{request.ticker}: quantity {quantity}: options trade whole contracts")
    if request.order_type is not OrderType.MARKET or request.time_in_force is not TimeInForce.DAY:
        raise OrderRejected(
            f"{request.ticker}: fractional quantity {quantity} is allowed for market day orders"
            f" only (this one is {request.order_type} {request.time_in_force})"
        )


def check_order(request: OrderRequest, rules: InstrumentRules) -> None:
    """What Alpaca would refuse, refused before sending, in words that name the limit."""
    check_quantity(request, rules)
    check_prices(request, rules)
    if request.extended_hours and (
        request.order_type is not OrderType.LIMIT or request.time_in_force is not TimeInForce.DAY
    ):
        raise OrderRejected(
            f"{request.ticker}: extended hours take limit day orders only"
            f" (this one is {request.order_type} {request.time_in_force})"
        )
    if is_crypto(request.ticker):
        if request.order_type not in (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT):
            raise OrderRejected(
                f"{request.ticker}: crypto takes market, limit and stop_limit orders"
                f" (not {request.order_type})"
            )
        if request.time_in_force not in (TimeInForce.GTC, TimeInForce.IOC):
            raise OrderRejected(
                f"{request.ticker}: crypto takes time in force gtc or ioc"
                f" (not {request.time_in_force})"
            )
    if is_option(request.ticker):
        if request.order_type is OrderType.TRAILING_STOP:
            raise OrderRejected(f"{request.ticker}: options take no trailing stops")
        if request.time_in_force is not TimeInForce.DAY:
            raise OrderRejected(
                f"{request.ticker}: options take time in force day (not {request.time_in_force})"
            )


def _money(value: Decimal | None) -> float | None:
    # alpaca-py puts floats on the wire: a checked Decimal's shortest repr is exact.
    return None if value is None else float(value)


def to_alpaca_request(
    request: OrderRequest, children: Sequence[OrderRequest] = ()
) -> MarketOrderRequest:
    """Our order (and bracket children) as alpaca-py's request model."""
    fields: dict[str, Any] = {
        "symbol": request.ticker,
        "qty": float(request.quantity),
        "side": str(request.side),
        "time_in_force": str(request.time_in_force),
        "client_order_id": request.client_order_id,
        "extended_hours": request.extended_hours or None,
    }
    if children:
        take_profit = next((c for c in children if c.role is OrderRole.TAKE_PROFIT), None)
        stop_loss = next((c for c in children if c.role is OrderRole.STOP_LOSS), None)
        fields["order_class"] = OrderClass.BRACKET if take_profit and stop_loss else OrderClass.OTO
        if take_profit is not None:
            fields["take_profit"] = TakeProfitRequest(limit_price=_money(take_profit.limit_price))
        if stop_loss is not None:
            fields["stop_loss"] = StopLossRequest(
                stop_price=_money(stop_loss.stop_price), limit_price=_money(stop_loss.limit_price)
            )
    kind = request.order_type
    try:
        if kind is OrderType.MARKET:
            return MarketOrderRequest(**fields)
        if kind is OrderType.LIMIT:
            return LimitOrderRequest(**fields, limit_price=_money(request.limit_price))
        if kind is OrderType.STOP:
            return StopOrderRequest(**fields, stop_price=_money(request.stop_price))
        if kind is OrderType.STOP_LIMIT:
            return StopLimitOrderRequest(
                **fields,
                stop_price=_money(request.stop_price),
                limit_price=_money(request.limit_price),
            )
        return TrailingStopOrderRequest(
            **fields,
            trail_price=_money(request.trail_amount),
            trail_percent=_money(request.trail_percent),
        )
    except ValueError as e:  # alpaca-py's own validation (pydantic)
        raise OrderRejected(f"{request.ticker}: alpaca-py refused the order: {e}") from None


def check_bracket(entry: OrderRequest, children: Sequence[OrderRequest]) -> None:
    """Alpaca's bracket: one take-profit (limit) and/or one stop-loss (stop or stop-limit), for
    the entry's whole quantity, on the other side, day or gtc."""
    roles = [c.role for c in children]
    if len(set(roles)) != len(roles) or not set(roles) <= {
        OrderRole.TAKE_PROFIT,
        OrderRole.STOP_LOSS,
    }:
        raise OrderRejected(
            f"{entry.ticker}: an Alpaca bracket takes one take-profit and one stop-loss"
            f" (got {', '.join(map(str, roles))})"
        )
    if entry.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
        raise OrderRejected(
            f"{entry.ticker}: an Alpaca bracket takes time in force day or gtc"
            f" (not {entry.time_in_force})"
        )
    for child in children:
        allowed = (
            (OrderType.LIMIT,)
            if child.role is OrderRole.TAKE_PROFIT
            else (OrderType.STOP, OrderType.STOP_LIMIT)
        )
        if child.order_type not in allowed:
            raise OrderRejected(
                f"{entry.ticker}: an Alpaca bracket's {child.role} is"
                f" {' or '.join(map(str, allowed))} (not {child.order_type})"
            )
        if child.quantity != entry.quantity or child.side is entry.side:
            raise OrderRejected(
                f"{entry.ticker}: an Alpaca bracket's {child.role} closes the entry's whole"
                f" quantity {entry.quantity} on the other side"
                f" (got {child.side} {child.quantity})"
            )


@dataclass
class _Book:
    """What the adapter has seen of one Alpaca order's fills: fill ids are checkpoints of the
    cumulative filled quantity (`<alpaca id>:<cumulative>`), the same whichever way — stream
    event or REST answer — a fill is learned, so the journal counts each once."""

    fills: list[Fill]

    @property
    def filled(self) -> Decimal:
        return sum((f.quantity for f in self.fills), Decimal(0))

    @property
    def cost(self) -> Decimal:
        return sum((f.quantity * f.price for f in self.fills), Decimal(0))

    def reach(
        self,
        order_id: str,
        client_order_id: str,
        ticker: str,
        side: Side,
        cumulative: Decimal,
        average: Decimal | None,
        at: datetime,
    ) -> None:
        """The order has filled `cumulative` in all at `average`: a fill for what is new."""
        quantity = cumulative - self.filled
        if quantity <= 0 or average is None:
            return
        price = (average * cumulative - self.cost) / quantity
        price = price.quantize(Decimal("0.000000001")).normalize()
        fill_id = f"{order_id}:{cumulative.normalize()}"
        self.fills.append(Fill(fill_id, client_order_id, ticker, side, quantity, price, at))


# -- the adapter -------------------------------------------------------------------------------


class _TimeoutSession(requests.Session):
    """alpaca-py calls `session.request` without a timeout: this session adds one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self.trust_env = False  # no proxy from the environment between us and the broker

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


def _without_retries(client: Any, timeout: float) -> Any:
    """Never let alpaca-py repeat a request on its own (it re-POSTs an order on 429 / 504),
    and give every request a deadline. tests/test_alpaca.py pins these private names."""
    client._retry = 0
    client._retry_codes = []
    client._session = _TimeoutSession(timeout)
    return client


class _Stream(TradingStream):
    """alpaca-py's stream, telling us when it is listening (after every (re)connect) and when
    the broker refused its credentials (it would otherwise retry forever, only logging)."""

    def __init__(
        self, *args: Any, on_listening: Callable[[], None], on_refused: Callable[[], None], **kw
    ) -> None:
        super().__init__(*args, **kw)
        self._on_listening = on_listening
        self._on_refused = on_refused

    async def _auth(self) -> None:
        try:
            await super()._auth()
        except ValueError:
            self._on_refused()
            raise

    async def _dispatch(self, msg: dict) -> None:
        if msg.get("stream") == "listening":
            self._on_listening()
        await super()._dispatch(msg)


class AlpacaBroker:
    def __init__(
        self,
        name: str,
        trading: TradingClient,
        stocks: StockHistoricalDataClient,
        crypto: CryptoHistoricalDataClient,
        stream_factory: Callable[..., _Stream],
        *,
        clock: Callable[[], datetime],
        timeout: float,
    ) -> None:
        self.name = name
        self.capabilities = CAPABILITIES
        self._trading = trading
        self._stocks = stocks
        self._crypto = crypto
        self._stream_factory = stream_factory
        self._clock = clock
        self._timeout = timeout
        self._listener: OrderListener | None = None
        self._stream: _Stream | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._listening = False
        self._refused = False
        self._stream_news = asyncio.Event()  # the stream listens, or was refused
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rules: dict[str, InstrumentRules] = {}
        self._books: dict[str, _Book] = {}
        # Our ids of bracket legs Alpaca named itself: alpaca order id → our client id.
        self._legs: dict[str, str] = {}
        # Orders not final as last seen (alpaca id → our client id), and what was last reported.
        self._working: dict[str, str] = {}
        self._reported: dict[str, tuple[OrderStatus, Decimal]] = {}
        self._seen_at: datetime | None = None  # the broker's time of the latest event seen

    @classmethod
    def from_config(
        cls, name: str, account: Any, credentials: Any, clock: Callable[[], datetime]
    ) -> AlpacaBroker:
        timeout = float(account.timeout)
        key, secret = credentials.key, credentials.secret
        base = str(account.base_url).rstrip("/") if account.base_url else None
        data = str(account.data_url).rstrip("/") if account.data_url else None
        stream_url = str(account.stream_url) if account.stream_url else None
        trading = TradingClient(key, secret, paper=account.paper, raw_data=True, url_override=base)
        stocks = StockHistoricalDataClient(key, secret, raw_data=True, url_override=data)
        crypto = CryptoHistoricalDataClient(key, secret, raw_data=True, url_override=data)

        def stream(**hooks: Any) -> _Stream:
            return _Stream(
                key, secret, paper=account.paper, raw_data=True, url_override=stream_url, **hooks
            )

        return cls(
            name,
            _without_retries(trading, timeout),
            _without_retries(stocks, timeout),
            _without_retries(crypto, timeout),
            stream,
            clock=clock,
            timeout=timeout,
        )

    # -- errors, in one place ------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Every alpaca-py / requests exception becomes one of ours, named for what to do."""
        try:
            yield
        except APIError as e:
            raise self._api_error(e, doing) from e
        except requests.Timeout as e:
            raise BrokerUnavailable(
                f"alpaca account {self.name}: no answer within {self._timeout:g} s ({doing});"
                " the outcome is unknown"
            ) from e
        except requests.RequestException as e:
            raise BrokerUnavailable(
                f"alpaca account {self.name}: cannot reach the broker ({doing}): {type(e).__name__}"
            ) from e

    def _api_error(self, e: APIError, doing: str) -> BrokerError:
        status = e.status_code or 0
        try:
            message, code = str(e.message), int(e.code)
        except (ValueError, KeyError, TypeError):
            message, code = (str(e) or "no message").strip()[:200], 0
        if status == 401 or (status == 403 and not str(code).startswith("403")):
            return BrokerError(
                f"alpaca account {self.name}: the broker refused the credentials (HTTP {status}"
                f" while {doing}); check the account's key and secret"
            )
        if status == 404:
            return _NotFound(message)
        if status == 422 and DUPLICATE_ID in message:
            return _Duplicate(message)
        if status == 429 or status >= 500 or status == 0:
            return BrokerUnavailable(
                f"alpaca account {self.name}: HTTP {status} while {doing}: {message}"
            )
        return OrderRejected(message)

    async def _call(self, doing: str, function: Callable[..., Any], *args: Any) -> Any:
        with self._errors(doing):
            return await asyncio.to_thread(function, *args)

    # -- life cycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Check the credentials over REST, then start the stream and wait for it to listen."""
        await self._call("reading the account", self._trading.get_account)
        if self._stream_task is None or self._stream_task.done():
            self._refused = self._listening = False
            self._stream_news.clear()
            self._stream = self._stream_factory(
                on_listening=self._on_listening, on_refused=self._on_refused
            )
            self._stream.subscribe_trade_updates(self._on_trade_update)
            self._stream_task = asyncio.create_task(
                self._stream._run_forever(), name=f"alpaca stream {self.name}"
            )
            await self._recover_legs()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stream_news.wait(), timeout=self._timeout)
        if self._refused:  # alpaca-py would retry forever, only logging
            await self._stop_stream()
            raise BrokerError(
                f"alpaca account {self.name}: the trade_updates stream refused the"
                " credentials; check the account's key and secret"
            )
        if not self._listening:
            raise BrokerUnavailable(
                f"alpaca account {self.name}: the trade_updates stream did not connect within"
                f" {self._timeout:g} s (it keeps trying)"
            )

    def _on_listening(self) -> None:
        self._listening, self._refused = True, False
        self._stream_news.set()
        log.info("alpaca account %s: trade_updates stream listening; re-syncing", self.name)
        self._spawn(self._resync())

    def _on_refused(self) -> None:
        self._listening, self._refused = False, True
        self._stream_news.set()
        log.error("alpaca account %s: the trade_updates stream refused the credentials", self.name)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await self._stop_stream()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in (self._trading, self._stocks, self._crypto):
            client._session.close()  # pooled sockets (the session stays usable on reconnect)

    async def _stop_stream(self) -> None:
        stream, task = self._stream, self._stream_task
        self._stream = self._stream_task = None
        self._listening = False
        self._stream_news.clear()
        if stream is not None:
            await stream.stop_ws()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.close()

    def on_disconnect(self, listener: Callable[[str], None]) -> None:
        """Nothing to watch: each call connects (a stream reconnects by itself and re-syncs)."""

    def listen(self, listener: OrderListener) -> None:
        self._listener = listener

    # -- the stream ----------------------------------------------------------------------------

    async def _on_trade_update(self, message: dict) -> None:
        """One `trade_updates` event (raw: string decimals) → the listener, ticker set."""
        try:
            data = message.get("data") or {}
            order = data.get("order") or {}
            at = parse_time(data.get("timestamp")) or self._clock()
            self._seen_at = max(self._seen_at or at, at)
            if data.get("event") in ("fill", "partial_fill"):
                self._learn_fill(order, data, at)
            state = self._state(order)
        except Exception:  # one odd event must not end the stream
            log.exception("alpaca account %s: unreadable trade update %r", self.name, message)
            return
        self._report(state, always=True)

    def _learn_fill(self, order: dict, data: dict, at: datetime) -> None:
        """A fill event: the fills before it (if a gap hid them), then this one."""
        cumulative, quantity = decimal(order.get("filled_qty")), decimal(data.get("qty"))
        price = decimal(data.get("price"))
        if cumulative is None or quantity is None or price is None:
            return
        book = self._book(order)
        before = cumulative - quantity
        average = decimal(order.get("filled_avg_price")) or price
        ticker, side = str(order.get("symbol")), Side(order.get("side"))
        cid = self._client_id(order)
        if before > book.filled:
            earlier = (average * cumulative - price * quantity) / before
            book.reach(order["id"], cid, ticker, side, before, earlier, at)
        now = (book.cost + price * quantity) / cumulative
        book.reach(order["id"], cid, ticker, side, cumulative, now, at)

    def _report(self, state: OrderState, *, always: bool = False) -> None:
        seen = (state.status, state.filled_quantity)
        changed = self._reported.get(state.client_order_id) != seen
        self._reported[state.client_order_id] = seen
        if self._listener is None or not (always or changed):
            return
        try:
            self._listener(state)
        except Exception:
            log.exception("alpaca account %s: the listener failed", self.name)

    async def _resync(self) -> None:
        """After a (re)connect: what changed while the stream was away, over REST. Orders
        submitted since the last event seen, and every order we last saw working."""
        try:
            since = self._seen_at - timedelta(seconds=5) if self._seen_at else None
            orders = await self._list_orders(QueryOrderStatus.ALL, after=since)
            seen = {o["id"] for o in orders}
            for order_id in [i for i in self._working if i not in seen]:
                try:
                    found = await self._call(
                        "re-syncing an order", self._trading.get_order_by_id, order_id
                    )
                except _NotFound:
                    continue
                orders.append(found)
            for order in orders:
                self._report(self._state(order))
        except BrokerError as e:
            log.error("alpaca account %s: re-sync after reconnect failed: %s", self.name, e)
        except Exception:
            log.exception("alpaca account %s: re-sync after reconnect failed", self.name)

    async def _recover_legs(self) -> None:
        """After a restart: our ids of the bracket legs Alpaca named (recent orders)."""
        try:
            await self._list_orders(QueryOrderStatus.ALL)
        except BrokerError as e:
            log.warning("alpaca account %s: could not list recent orders: %s", self.name, e)

    # -- reading -------------------------------------------------------------------------------

    async def _list_orders(
        self,
        status: QueryOrderStatus,
        *,
        after: datetime | None = None,
        ticker: str | None = None,
    ) -> list[dict]:
        """Orders with their legs flattened out (`nested`, so each leg knows its entry)."""
        flat: list[dict] = []
        while True:
            query = GetOrdersRequest(
                status=status,
                limit=STREAM_LIMIT,
                nested=True,
                after=after,
                # Paged forward from `after`; without it, the latest orders.
                direction="asc" if after else "desc",
                symbols=[ticker] if ticker else None,
            )
            page = await self._call("listing orders", self._trading.get_orders, query)
            for order in page:
                flat.append(order)
                for leg in order.get("legs") or ():
                    self._name_leg(order, leg)
                    flat.append(leg)
            if len(page) < STREAM_LIMIT or after is None:
                return flat
            after = parse_time(page[-1].get("submitted_at"))

    def _name_leg(self, entry: dict, leg: dict) -> None:
        if is_alpaca_named(str(leg.get("client_order_id", ""))) and leg["id"] not in self._legs:
            self._legs[leg["id"]] = sibling_id(entry["client_order_id"], str(leg_role(leg)))

    def _client_id(self, order: dict) -> str:
        return self._legs.get(order["id"], order["client_order_id"])

    def _book(self, order: dict) -> _Book:
        return self._books.setdefault(order["id"], _Book([]))

    def _state(self, order: dict) -> OrderState:
        """An Alpaca order (raw JSON) as our OrderState; remembers its fills and legs."""
        for leg in order.get("legs") or ():
            self._name_leg(order, leg)
        status_word = str(order.get("status"))
        status = STATUS.get(status_word, OrderStatus.UNKNOWN)
        cid = self._client_id(order)
        ticker = str(order.get("symbol"))
        side = Side(order["side"]) if order.get("side") else None
        filled = decimal(order.get("filled_qty")) or Decimal(0)
        average = decimal(order.get("filled_avg_price"))
        book = self._book(order)
        if filled > book.filled and side is not None:
            at = parse_time(order.get("filled_at") or order.get("updated_at")) or self._clock()
            book.reach(order["id"], cid, ticker, side, filled, average, at)
        updated = parse_time(order.get("updated_at"))
        if updated is not None:
            self._seen_at = max(self._seen_at or updated, updated)
        if status.is_final:
            self._working.pop(order["id"], None)
        else:
            self._working[order["id"]] = cid
        kind = order.get("type") or order.get("order_type")
        message = STATUS_WORDS.get(status_word)
        if status_word == "replaced":
            message = "replaced"
        return OrderState(
            client_order_id=cid,
            status=status,
            filled_quantity=filled,
            average_fill_price=average,
            broker_order_id=order.get("id"),
            message=message,
            fills=tuple(book.fills),
            ticker=ticker,
            side=side,
            quantity=decimal(order.get("qty")),
            order_type=OrderType(kind) if kind in set(OrderType) else None,
            limit_price=decimal(order.get("limit_price")),
            stop_price=decimal(order.get("stop_price")),
        )

    async def _find(self, client_order_id: str) -> dict | None:
        """The Alpaca order behind one of our ids (a bracket leg through its entry)."""
        try:
            return await self._call(
                "looking up an order", self._trading.get_order_by_client_id, client_order_id
            )
        except _NotFound:
            pass
        if leg_of(client_order_id) not in ("take_profit", "stop_loss"):
            return None
        entry_id = sibling_id(client_order_id, "entry")
        try:
            entry = await self._call(
                "looking up a bracket", self._trading.get_order_by_client_id, entry_id
            )
        except _NotFound:
            return None
        for leg in entry.get("legs") or ():
            self._name_leg(entry, leg)
            if self._legs.get(leg["id"]) == client_order_id:
                return leg
        return None

    async def get_order(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> OrderState | None:
        order = await self._find(client_order_id)
        return None if order is None else self._state(order)

    async def open_orders(self, ticker: str | None = None) -> list[OrderState]:
        orders = await self._list_orders(QueryOrderStatus.OPEN, ticker=ticker)
        states = [self._state(o) for o in orders]
        return [s for s in states if not s.status.is_final and ticker in (None, s.ticker)]

    async def position(self, ticker: str) -> Position:
        try:
            found = await self._call(
                "reading a position", self._trading.get_open_position, position_symbol(ticker)
            )
        except _NotFound:
            return Position(ticker, Decimal(0))
        return self._position(found, ticker)

    async def positions(self) -> list[Position]:
        found = await self._call("reading positions", self._trading.get_all_positions)
        return [self._position(p) for p in found]

    def _position(self, raw: dict, ticker: str | None = None) -> Position:
        quantity = decimal(raw.get("qty")) or Decimal(0)
        if raw.get("side") == "short" and quantity > 0:
            quantity = -quantity
        return Position(
            ticker or ticker_of(str(raw["symbol"]), raw.get("asset_class")),
            quantity,
            decimal(raw.get("avg_entry_price")),
        )

    async def account(self) -> AccountSummary:
        found = await self._call("reading the account", self._trading.get_account)
        return AccountSummary(
            equity=decimal(found.get("equity")) or Decimal(0),
            cash=decimal(found.get("cash")) or Decimal(0),
            buying_power=decimal(found.get("buying_power")) or Decimal(0),
        )

    async def instrument(self, ticker: str) -> InstrumentRules:
        """Crypto: the asset's increments; stocks and options: the rules of SPEC §7."""
        if not is_crypto(ticker):
            return InstrumentRules()
        if ticker not in self._rules:
            try:
                asset = await self._call(
                    "reading an asset", self._trading.get_asset, position_symbol(ticker)
                )
            except _NotFound:
                raise OrderRejected(f"{ticker}: Alpaca has no such asset") from None
            self._rules[ticker] = InstrumentRules(
                tick_size=decimal(asset.get("price_increment")),
                lot_size=decimal(asset.get("min_trade_increment")),
                min_quantity=decimal(asset.get("min_order_size")),
            )
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
                return decimal((trades.get(ticker) or {}).get("p"))
            trades = await self._call(
                "reading a quote",
                self._stocks.get_stock_latest_trade,
                StockLatestTradeRequest(symbol_or_symbols=ticker),
            )
            price = decimal((trades.get(ticker) or {}).get("p"))
            if price is not None:
                return price
            quotes = await self._call(
                "reading a quote",
                self._stocks.get_stock_latest_quote,
                StockLatestQuoteRequest(symbol_or_symbols=ticker),
            )
            quote = quotes.get(ticker) or {}
            bid, ask = decimal(quote.get("bp")), decimal(quote.get("ap"))
            return (bid + ask) / 2 if bid and ask else None
        except (BrokerError, ValueError) as e:
            log.warning("alpaca account %s: no quote for %s: %s", self.name, ticker, e)
            return None

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
        except _Duplicate:
            # Sent before (a retry, a restart): answer what the broker has; send nothing.
            placed = await self._find(entry.client_order_id)
            if placed is None:
                raise BrokerUnavailable(
                    f"alpaca account {self.name}: {entry.client_order_id} is a duplicate"
                    " but cannot be found"
                ) from None
        except _NotFound as e:
            raise OrderRejected(str(e)) from None
        legs = {leg_role(leg): leg for leg in placed.get("legs") or ()}
        for child in children:
            leg = legs.get(child.role)
            if leg is not None:
                self._legs[leg["id"]] = child.client_order_id
        states = [self._state(placed)]
        states += [self._state(legs[c.role]) for c in children if c.role in legs]
        return states

    async def replace(self, client_order_id: str, request: OrderRequest) -> OrderState:
        """Alpaca's PATCH: a new order (our new id) in the old one's place, bracket link kept.
        It changes quantity, prices and time in force, never the order type or side."""
        already = await self._find(request.client_order_id)
        if already is not None:
            return self._state(already)
        check_order(request, await self.instrument(request.ticker))
        old = await self._find(client_order_id)
        if old is None:
            raise OrderRejected(f"alpaca: no order {client_order_id} to replace")
        old_state = self._state(old)
        if old_state.status.is_final:
            raise OrderRejected(
                f"alpaca: order {client_order_id} is {old.get('status')}: nothing to replace"
            )
        if old_state.order_type is not request.order_type or old_state.side is not request.side:
            raise OrderRejected(
                f"alpaca: a replace keeps the order type and side ({old_state.order_type}"
                f" {old_state.side}); {request.order_type} {request.side} needs a new order"
            )
        if request.quantity % 1 != 0:
            raise OrderRejected(
                f"alpaca: a replace takes a whole quantity (not {request.quantity})"
            )
        patch = ReplaceOrderRequest(
            qty=int(request.quantity),
            time_in_force=str(request.time_in_force),
            limit_price=_money(request.limit_price),
            stop_price=_money(request.stop_price),
            trail=_money(request.trail_amount or request.trail_percent),
            client_order_id=request.client_order_id,
        )
        try:
            new = await self._call(
                "replacing an order", self._trading.replace_order_by_id, old["id"], patch
            )
        except _Duplicate:
            new = await self._find(request.client_order_id)
            if new is None:
                raise BrokerUnavailable(
                    f"alpaca account {self.name}: {request.client_order_id} is a duplicate"
                    " but cannot be found"
                ) from None
        except _NotFound:
            raise OrderRejected(f"alpaca: no order {client_order_id} to replace") from None
        return self._state(new)

    async def cancel(self, client_order_id: str, *, ticker: str | None = None) -> OrderState | None:
        """Cancel (Alpaca answers 204); an order no longer cancelable answers its state."""
        order = await self._find(client_order_id)
        if order is None:
            return None
        try:
            await self._call("canceling an order", self._trading.cancel_order_by_id, order["id"])
        except OrderRejected as e:  # 422: filled or canceled already
            log.info("alpaca: %s not canceled: %s", client_order_id, e)
        except _NotFound:
            return None
        found = await self._call(
            "reading a canceled order", self._trading.get_order_by_id, order["id"]
        )
        state = self._state(found)
        return replace(state, client_order_id=client_order_id)
