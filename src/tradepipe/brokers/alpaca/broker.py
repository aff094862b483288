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

This module does the talking and the bookkeeping; the translation has no I/O and lives beside
it: `alpaca_orders` (an order as Alpaca takes it), `alpaca_parsing` (its answers read as ours),
`alpaca_fills` (fills out of its cumulative quantities).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import (
    CryptoLatestTradeRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
)
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from tradepipe.brokers.alpaca.fills import FillBook
from tradepipe.brokers.alpaca.orders import (
    OPTION_RULES,
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
    is_alpaca_named,
    is_crypto,
    is_option,
    leg_role,
    parse_time,
    position_symbol,
    quote_mid,
    to_order_state,
    to_position,
    trade_price,
)
from tradepipe.brokers.alpaca.stream import STREAM_PATH, Stream, TradeUpdates, stream_url_for
from tradepipe.brokers.base import (
    AccountSummary,
    Capabilities,
    InstrumentRules,
    OrderListener,
    StreamHealth,
)
from tradepipe.brokers.reporting import Reporter, logged
from tradepipe.core.ids import leg_of, sibling_id
from tradepipe.core.model import (
    OrderRequest,
    OrderState,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from tradepipe.errors import BrokerError, BrokerUnavailable, OrderRejected

log = logging.getLogger(__name__)

_Stream = Stream  # its name before the stream moved to `stream`
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
)

DUPLICATE_ID = "client_order_id must be unique"
STREAM_LIMIT = 500  # orders per page of the re-sync (Alpaca's maximum)
class _NotFound(BrokerError):
    """Alpaca answered 404: the caller decides what absence means."""


class _Duplicate(BrokerError):
    """Alpaca already has an order with this client order id."""


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
        self._books: dict[str, FillBook] = {}
        # Our ids of bracket legs Alpaca named itself: alpaca order id → our client id.
        self._legs: dict[str, str] = {}
        # Orders not final as last seen (alpaca id → our client id), and what was last reported.
        self._working: dict[str, str] = {}
        self._seen_at: datetime | None = None  # the broker's time of the latest event seen

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
            _without_retries(trading, timeout),
            _without_retries(stocks, timeout),
            _without_retries(crypto, timeout),
            stream,
            clock=clock,
            timeout=timeout,
        )

    def canonical_ticker(self, ticker: str) -> str:
        return alpaca_ticker(ticker)

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
        average = decimal(order.get("filled_avg_price")) or price
        ticker, side = str(order.get("symbol")), Side(str(order.get("side")))
        book.learn_event(
            order["id"],
            self._client_id(order),
            ticker,
            side,
            cumulative=cumulative,
            quantity=quantity,
            price=price,
            average=average,
            at=at,
        )

    def _report(self, state: OrderState, *, always: bool = False) -> None:
        self._reporter.report(state, always=always)

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
                direction=Sort.ASC if after else Sort.DESC,
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

    def _book(self, order: dict) -> FillBook:
        return self._books.setdefault(order["id"], FillBook())

    def _state(self, order: dict) -> OrderState:
        """An Alpaca order (raw JSON) as our OrderState; remembers its fills and legs."""
        for leg in order.get("legs") or ():
            self._name_leg(order, leg)
        cid = self._client_id(order)
        side = Side(order["side"]) if order.get("side") else None
        filled = decimal(order.get("filled_qty")) or Decimal(0)
        book = self._book(order)
        if filled > book.filled and side is not None:
            at = parse_time(order.get("filled_at") or order.get("updated_at")) or self._clock()
            average = decimal(order.get("filled_avg_price"))
            book.reach(order["id"], cid, str(order.get("symbol")), side, filled, average, at)
        updated = parse_time(order.get("updated_at"))
        if updated is not None:
            self._seen_at = max(self._seen_at or updated, updated)
        state = to_order_state(order, cid, tuple(book.fills))
        if state.status.is_final:
            self._working.pop(order["id"], None)
        else:
            self._working[order["id"]] = cid
        return state

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
        """Crypto: the asset's increments; stocks and options: the rules of SPEC §7, and an
        option contract is worth 100 shares (SPEC §12)."""
        if is_option(ticker):
            return OPTION_RULES
        if not is_crypto(ticker):
            return InstrumentRules()
        if ticker not in self._rules:
            try:
                asset = await self._call(
                    "reading an asset", self._trading.get_asset, position_symbol(ticker)
                )
            except _NotFound:
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
        check_replace(client_order_id, self._state(old), old.get("status"), request)
        patch = to_alpaca_replace(request)
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
