"""Interactive Brokers through TWS / IB Gateway (ib_async): our client order id is `orderRef`.

IB logs in inside TWS / Gateway; this adapter only opens the API socket (host, port, client id).
Things to know (https://interactivebrokers.github.io/tws-api/):

- IB does not enforce unique `orderRef`s: before placing, the id is looked up among this
  session's orders, else IB is asked for the open orders of every client id (an earlier session
  may have used another one), the completed orders and today's executions; found → its state.
  Another client id's order is only a copy (IB reports its changes to that client alone): it is
  asked for again at every lookup, not listed by `open_orders`, and not canceled (IB lets only
  its own client cancel it). Fills alone are "filled" only when they cover the quantity sent.
- Fill ids are IB's execIds without their revision: IB corrects an execution by sending the
  same execId with the next revision ("….01.01" → "….01.02"), which replaces the first.
- IB's Inactive is not final (the order is held, e.g. outside trading hours, and may become
  active): it is answered open, with IB's words.
- ib_async does not reconnect and forgets every order when the socket closes. `connect()` is
  called again by the engine (with backoff); it reconnects with the same client id, the startup
  sync replays open orders and today's executions, and what changed meanwhile is reported
  through the listener. The Gateway restarts daily (around 23:45–00:45 ET): that is a disconnect.
- Brackets use IB's transmit semantics: entry and take-profit are sent with transmit=False, the
  stop with transmit=True releases all three; the children carry `parentId` and one OCA group.
- `replace` modifies the working order in place (same IB order id, so its bracket / OCA link is
  kept) and gives it the new client id as `orderRef`; `get_order(old id)` then answers
  "canceled, replaced by <new id>" (from memory: after a restart the old id is no longer known).
- Tickers: stocks `AAPL` or `NASDAQ:AAPL` (SMART-routed, USD); futures only with their contract
  month, `ESZ2026` (root, month code, year; `CME:ESZ2026` to name the exchange) — continuous
  symbols such as `NQ1!` are refused; options as OCC symbols, `AAPL 261218C00200000`.
- Time in force `cls` becomes a market-on-close (MOC) or limit-on-close (LOC) order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import ib_async

from tradepipe.brokers.base import AccountSummary, Capabilities, InstrumentRules, OrderListener
from tradepipe.errors import BrokerError, BrokerUnavailable, OrderRejected
from tradepipe.orders import (
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)

log = logging.getLogger(__name__)

CAPABILITIES = Capabilities(
    order_types=frozenset(OrderType),
    time_in_force=frozenset(TimeInForce),
    brackets=True,
    fractional=False,
    short_selling=True,
    quotes=False,
    lot_size=Decimal(1),
)

# What the startup sync fetches: open orders and today's executions restore ib_async's state
# after a reconnect; positions and the account's updates feed `positions()` / `account()`.
# Completed orders are asked for when an id is looked up (apiOnly), not at every connect, and
# sub-account updates only matter for advisor accounts.
STARTUP_FETCH = (
    ib_async.StartupFetch.POSITIONS
    | ib_async.StartupFetch.ORDERS_OPEN
    | ib_async.StartupFetch.ACCOUNT_UPDATES
    | ib_async.StartupFetch.EXECUTIONS
)

DISCONNECTED = (
    "IB Gateway is not connected (its daily restart is around 23:45–00:45 ET; outside that"
    " window check that TWS / Gateway runs with the API enabled on {where}); tradepipe"
    " reconnects on its own"
)

# ib_async's order statuses → ours (ValidationError: a warning, the order is still live).
# Inactive is not final at IB: the order is held (outside trading hours, a hold, a check) and
# may become active again, so it stays open, with IB's words (`parse_status`).
STATUSES = {
    "PendingSubmit": OrderStatus.SUBMITTED,
    "ApiPending": OrderStatus.SUBMITTED,
    "PreSubmitted": OrderStatus.ACCEPTED,
    "Submitted": OrderStatus.ACCEPTED,
    "PendingCancel": OrderStatus.ACCEPTED,
    "ValidationError": OrderStatus.ACCEPTED,
    "ApiUpdate": OrderStatus.ACCEPTED,
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "ApiCancelled": OrderStatus.CANCELED,
    "Inactive": OrderStatus.ACCEPTED,
}
# After these IB does nothing more with an order. ib_async's `isDone()` / `openTrades()` also
# count Inactive as done: the adapter asks this set instead.
FINAL = frozenset({"Filled", "Cancelled", "ApiCancelled"})
CANCELED_CODES = frozenset({202, 10148})  # "Order Canceled", not a rejection
ORDER_TYPES = {
    OrderType.MARKET: "MKT",
    OrderType.LIMIT: "LMT",
    OrderType.STOP: "STP",
    OrderType.STOP_LIMIT: "STP LMT",
    OrderType.TRAILING_STOP: "TRAIL",
}
IB_ORDER_TYPES = {v: k for k, v in ORDER_TYPES.items()} | {
    "MOC": OrderType.MARKET,
    "LOC": OrderType.LIMIT,
}

_CONTINUOUS = re.compile(r"^[A-Z0-9]+\d!$")
_FUTURE = re.compile(r"^(?P<root>[A-Z0-9]{1,6})(?P<month>[FGHJKMNQUVXZ])(?P<year>20\d\d)$")
_OPTION = re.compile(r"^(?P<root>[A-Z]{1,6})\s*(?P<expiry>\d{6})(?P<right>[CP])(?P<strike>\d{8})$")
_STOCK = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
MONTH_CODES = "FGHJKMNQUVXZ"
_LOGGED_ERROR = re.compile(
    r"^(?:Error|Warning) \d+, reqId -?\d+: (?P<text>.*?)(?:, contract: .*)?$"
)


# -- translation (pure) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instrument:
    """What a ticker names at IB; `ticker` is its canonical spelling."""

    ticker: str
    kind: str  # STK, FUT, OPT
    symbol: str
    exchange: str = ""
    month: str = ""  # FUT: YYYYMM; OPT: expiry YYYYMMDD
    right: str = ""
    strike: Decimal | None = None


def parse_ticker(ticker: str) -> Instrument:
    """A signal's ticker as an IB instrument; an unusable one is refused with the syntax."""
    text = ticker.strip().upper()
    exchange, _, bare = text.rpartition(":")
    if _CONTINUOUS.match(bare):
        raise OrderRejected(
            f'IB: "{ticker}" is a continuous futures symbol; IB orders need one contract'
            f' month: write root + month code + year, e.g. "{bare[:-2]}Z2026" (December'
            ' 2026), optionally with the exchange, "CME:' + bare[:-2] + 'Z2026"'
        )
    if match := _FUTURE.match(bare):
        month = f"{match['year']}{MONTH_CODES.index(match['month']) + 1:02d}"
        return Instrument(bare, "FUT", match["root"], exchange, month)
    if match := _OPTION.match(bare):
        strike = Decimal(match["strike"]) / 1000
        canonical = f"{match['root']} {match['expiry']}{match['right']}{match['strike']}"
        return Instrument(
            canonical,
            "OPT",
            match["root"],
            exchange,
            f"20{match['expiry']}",
            match["right"],
            strike,
        )
    if _STOCK.match(bare):
        return Instrument(bare, "STK", bare.replace(".", " "))
    raise OrderRejected(
        f'IB: cannot read the ticker "{ticker}": use a stock symbol ("AAPL"), a future with its'
        ' contract month ("ESZ2026") or an OCC option symbol ("AAPL 261218C00200000")'
    )


def canonical(ticker: str) -> str:
    """One spelling per instrument ("NASDAQ:AAPL" and "AAPL" are one stock)."""
    try:
        return parse_ticker(ticker).ticker
    except OrderRejected:
        return ticker


def to_contract(instrument: Instrument) -> ib_async.Contract:
    if instrument.kind == "FUT":
        return ib_async.Future(
            instrument.symbol, instrument.month, instrument.exchange, currency="USD"
        )
    if instrument.kind == "OPT":
        assert instrument.strike is not None
        return ib_async.Option(
            instrument.symbol,
            instrument.month,
            float(instrument.strike),
            instrument.right,
            "SMART",
            currency="USD",
        )
    return ib_async.Stock(instrument.symbol, "SMART", "USD")


def ticker_of(contract: ib_async.Contract) -> str:
    """Our spelling of an IB contract (for orders and positions tradepipe did not place)."""
    if contract.secType == "FUT" and len(contract.lastTradeDateOrContractMonth) >= 6:
        month = contract.lastTradeDateOrContractMonth
        return f"{contract.symbol}{MONTH_CODES[int(month[4:6]) - 1]}{month[:4]}"
    if contract.secType == "OPT":
        strike = int(Decimal(str(contract.strike)) * 1000)
        expiry = contract.lastTradeDateOrContractMonth[2:]
        return f"{contract.symbol} {expiry}{contract.right[:1]}{strike:08d}"
    return contract.symbol.replace(" ", ".")


def to_ib_order(request: OrderRequest, account: str | None) -> ib_async.Order:
    """Our order as an IB order; what IB cannot take is refused naming the field."""
    if request.quantity <= 0 or request.quantity != request.quantity.to_integral_value():
        raise OrderRejected(
            f"IB: quantity {request.quantity} of {request.ticker} must be a positive whole"
            " number (fractional orders are off)"
        )
    order_type = ORDER_TYPES[request.order_type]
    tif = request.time_in_force.value.upper()
    if request.time_in_force is TimeInForce.CLS:
        closing = {OrderType.MARKET: "MOC", OrderType.LIMIT: "LOC"}
        if request.order_type not in closing:
            raise OrderRejected(
                f"IB: time in force cls works with market or limit orders (market-on-close,"
                f" limit-on-close), not {request.order_type}"
            )
        order_type, tif = closing[request.order_type], "DAY"
    order = ib_async.Order(
        action="BUY" if request.side is Side.BUY else "SELL",
        totalQuantity=float(request.quantity),
        orderType=order_type,
        tif=tif,
        orderRef=request.client_order_id,
        account=account or "",
        outsideRth=request.extended_hours,
        transmit=True,
    )
    if request.limit_price is not None:
        order.lmtPrice = request.limit_price
    if request.order_type is OrderType.TRAILING_STOP:
        if request.trail_amount is not None:
            order.auxPrice = request.trail_amount
        elif request.trail_percent is not None:
            order.trailingPercent = request.trail_percent
        else:
            raise OrderRejected("IB: a trailing stop needs trail_amount or trail_percent")
    elif request.stop_price is not None:
        order.auxPrice = request.stop_price
    return order


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or value == ib_async.util.UNSET_DOUBLE:
        return None
    try:
        return _quantity(value)
    except InvalidOperation:
        return None


def _quantity(value: float | Decimal) -> Decimal:
    """IB reports quantities as floats: 5.0 is 5 shares, as our journal writes it."""
    number = Decimal(str(value))
    return (
        number.to_integral_value() if number == number.to_integral_value() else number.normalize()
    )


def _error(trade: ib_async.Trade, *, warnings: bool) -> tuple[int, str] | None:
    """The last error IB reported for an order (code, IB's own words), from ib_async's log.
    ib_async logs a warning (the order stays live) with the status ValidationError: it is no
    reason for a cancel (a held order's warning must not make its cancel a rejection)."""
    for entry in reversed(trade.log):
        if entry.errorCode and (warnings or entry.status != "ValidationError"):
            match = _LOGGED_ERROR.match(entry.message)
            return entry.errorCode, match["text"] if match else entry.message
    return None


def parse_status(trade: ib_async.Trade, filled: Decimal) -> tuple[OrderStatus, str | None]:
    status = STATUSES.get(trade.orderStatus.status, OrderStatus.UNKNOWN)
    error = _error(trade, warnings=False)
    message = error[1] if error else None
    if status is OrderStatus.CANCELED and error and error[0] not in CANCELED_CODES:
        return OrderStatus.REJECTED, message
    if trade.orderStatus.status == "Inactive":
        held = "inactive at IB (not working now; IB may make it active)"
        words = _error(trade, warnings=True)
        status = OrderStatus.PARTIALLY_FILLED if filled > 0 else status
        return status, f"{held}: {words[1]}" if words else held
    if status is OrderStatus.ACCEPTED and filled > 0:
        return OrderStatus.PARTIALLY_FILLED, None
    if status is OrderStatus.ACCEPTED and trade.orderStatus.status == "PreSubmitted":
        return status, "held by IB until its parent fills or its trigger is reached"
    return status, message if status in (OrderStatus.CANCELED, OrderStatus.REJECTED) else None


def execution_revision(exec_id: str) -> tuple[str, int]:
    """An execId as (the execution's own id, its revision). IB corrects an execution by
    sending it again with the digits after the final period raised ("….01.01" → "….01.02",
    https://interactivebrokers.github.io/tws-api/classIBApi_1_1Execution.html)."""
    stem, dot, revision = exec_id.rpartition(".")
    if not dot or not stem or not revision.isdigit():
        return exec_id, 0
    return stem, int(revision)


def to_fills(client_order_id: str, ticker: str, fills: Iterable[ib_async.Fill]) -> tuple[Fill, ...]:
    """One fill per execution, its latest revision winning. The fill id is the execId without
    its revision: the same before and after a correction and in every replay, since the
    journal dedupes on it."""
    latest: dict[str, tuple[int, ib_async.Fill]] = {}
    for fill in fills:
        stem, revision = execution_revision(fill.execution.execId)
        if stem not in latest or revision > latest[stem][0]:
            latest[stem] = (revision, fill)
    return tuple(to_fill(client_order_id, ticker, f, stem) for stem, (_, f) in latest.items())


def fills_state(
    client_order_id: str,
    ticker: str,
    fills: Sequence[ib_async.Fill],
    quantity: Decimal | None,
) -> OrderState:
    """An order IB reports executions for but no longer lists (after a restart: only in today's
    executions). Filled only when the fills cover the quantity sent, if it is known at all;
    otherwise partially filled by what they say — never filled early."""
    found = to_fills(client_order_id, ticker, fills)
    executed = sum((f.quantity for f in found), Decimal(0))
    value = sum((f.quantity * f.price for f in found), Decimal(0))
    status, message = OrderStatus.FILLED, None
    if quantity is None or executed < quantity:
        status = OrderStatus.PARTIALLY_FILLED
        message = (
            f"IB reports executions for {executed}, not the order itself: its quantity is not known"
            if quantity is None
            else f"IB reports executions for {executed} of {quantity}, not the order itself:"
            " what became of the rest is not known"
        )
    return OrderState(
        client_order_id,
        status,
        filled_quantity=executed,
        average_fill_price=value / executed if executed else None,
        broker_order_id=str(fills[0].execution.permId),
        message=message,
        fills=found,
        ticker=ticker,
        side=found[0].side,
        quantity=quantity,
    )


def to_fill(client_order_id: str, ticker: str, fill: ib_async.Fill, fill_id: str) -> Fill:
    execution = fill.execution
    return Fill(
        fill_id=fill_id,
        client_order_id=client_order_id,
        ticker=ticker,
        side=Side.BUY if execution.side == "BOT" else Side.SELL,
        quantity=_quantity(execution.shares),
        price=_quantity(execution.price),
        filled_at=execution.time if isinstance(execution.time, datetime) else fill.time,
    )


# -- the adapter ----------------------------------------------------------------------------


class IbkrBroker:
    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        client_id: int,
        account: str | None,
        timeout: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.name = name
        self.capabilities = CAPABILITIES
        self._host, self._port, self._client_id = host, port, client_id
        self._account = account
        self._timeout = timeout
        self._clock = clock
        self._ib = ib_async.IB()
        self._listener: OrderListener | None = None
        self._tickers: dict[str, str] = {}  # client order id → the ticker it was sent with
        self._quantities: dict[str, Decimal] = {}  # … and the quantity (this process only)
        self._contracts: dict[str, ib_async.ContractDetails] = {}
        self._reported: dict[str, OrderState] = {}  # what the listener heard last, per id
        self._has_connected = False
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._disconnect_listener: Callable[[str], None] | None = None
        self._link_lost: str | None = None  # error 1100 until 1101 / 1102
        self._lock = asyncio.Lock()  # ib_async keys some requests by name: one at a time
        self._ib.orderStatusEvent += self._on_order_event
        self._ib.execDetailsEvent += self._on_fill_event
        self._ib.errorEvent += self._on_error
        self._ib.disconnectedEvent += self._on_disconnected

    @classmethod
    def from_config(
        cls, name: str, account: Any, credentials: Any, clock: Callable[[], datetime]
    ) -> IbkrBroker:
        return cls(
            name,
            host=account.host,
            port=account.port,
            client_id=account.client_id,
            account=account.account,
            timeout=float(account.timeout),
            clock=clock,
        )

    # -- errors, in one place ------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except BrokerError:
            raise
        except TimeoutError as e:
            raise BrokerUnavailable(
                f"IB {self.name}: no answer within {self._timeout:g} s while {doing}"
            ) from e
        except (ConnectionError, OSError) as e:
            raise BrokerUnavailable(f"IB {self.name}: {self._down()} ({doing}: {e})") from e
        except ib_async.RequestError as e:
            raise OrderRejected(f"IB {self.name}: {e.message}") from e

    def _down(self) -> str:
        return DISCONNECTED.format(where=f"{self._host}:{self._port}")

    def _link(self) -> None:
        if not self._ib.isConnected():
            raise BrokerUnavailable(f"IB {self.name}: {self._down()}")
        if self._link_lost is not None:
            raise BrokerUnavailable(f"IB {self.name}: {self._link_lost}")

    async def _ask(self, doing: str, request: Any) -> Any:
        with self._errors(doing):
            return await asyncio.wait_for(request, self._timeout)

    # -- life cycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._ib.isConnected():
            return
        # Under the lock: ib_async answers reqOpenOrders (the startup sync) and reqAllOpenOrders
        # (a lookup) under one key, so they must not overlap.
        async with self._lock:
            if self._ib.isConnected():  # another caller connected meanwhile
                return
            with self._errors(f"connecting to {self._host}:{self._port}"):
                await self._ib.connectAsync(
                    self._host,
                    self._port,
                    clientId=self._client_id,
                    timeout=self._timeout,
                    account=self._account or "",
                    raiseSyncErrors=True,
                    fetchFields=STARTUP_FETCH,
                )
        self._link_lost = None
        if self._account and self._account not in self._ib.managedAccounts():
            accounts = ", ".join(self._ib.managedAccounts())
            self._ib.disconnect()
            raise BrokerError(
                f"IB {self.name}: account {self._account} is not managed by this login"
                f" (it manages {accounts})"
            )
        if self._has_connected:  # what happened while we were away
            await self._resync()
        self._has_connected = True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._closing = True
        try:
            self._ib.disconnect()
        finally:
            self._closing = False

    def listen(self, listener: OrderListener) -> None:
        self._listener = listener

    def on_disconnect(self, listener: Callable[[str], None]) -> None:
        self._disconnect_listener = listener

    def _on_disconnected(self) -> None:
        if self._closing:
            return
        log.warning("IB %s: disconnected from %s:%s", self.name, self._host, self._port)
        if self._disconnect_listener is not None:
            self._disconnect_listener(
                f"IB {self.name}: the connection to {self._host}:{self._port} dropped"
                " (IB Gateway restarts daily around 23:45-00:45 ET); reconnecting"
            )

    def _on_error(self, request_id: int, code: int, text: str, contract: Any) -> None:
        if code == 1100:
            self._link_lost = f"IB Gateway lost its connection to IB (error 1100: {text})"
        elif code in (1101, 1102):  # restored; 1101: data lost → resubscribe and re-sync
            self._link_lost = None
            task = asyncio.get_running_loop().create_task(self._restored(code))
            self._tasks.add(task)  # kept: a task nobody holds may be collected mid-run
            task.add_done_callback(self._tasks.discard)

    async def _restored(self, code: int) -> None:
        try:
            if code == 1101 and self._account:
                await self._ask("resubscribing", self._ib.reqAccountUpdatesAsync(self._account))
            async with self._lock:
                await self._ask("re-syncing open orders", self._ib.reqOpenOrdersAsync())
            await self._resync()
        except BrokerError as e:
            log.error("IB %s: re-sync after error %s failed: %s", self.name, code, e)

    async def _resync(self) -> None:
        """After a reconnect: today's fills and the orders' states, reported where changed."""
        asked = await self._ask_ib("re-syncing")
        ids = {t.order.orderRef for t in (*self._ib.trades(), *asked) if t.order.orderRef}
        ids |= {f.execution.orderRef for f in self._ib.fills() if f.execution.orderRef}
        for client_order_id in sorted(ids | set(self._reported)):
            state = self._known(client_order_id, asked)
            if state is not None:
                self._report(state)

    async def _ask_ib(self, doing: str) -> list[ib_async.Trade]:
        """Ask IB anew for the open orders of every client id, the completed orders and today's
        executions; answers the orders (ib_async keeps the executions)."""
        async with self._lock:
            listed = await self._ask(f"{doing} open orders", self._ib.reqAllOpenOrdersAsync())
            completed = await self._ask(
                f"{doing} completed orders", self._ib.reqCompletedOrdersAsync(True)
            )
            await self._ask(f"{doing} executions", self._ib.reqExecutionsAsync())
        return [*listed, *completed]

    # -- events --------------------------------------------------------------------------------

    def _on_order_event(self, trade: ib_async.Trade) -> None:
        if trade.order.orderRef:
            self._report(self._state(trade.order.orderRef, [trade]))

    def _on_fill_event(self, trade: ib_async.Trade, fill: ib_async.Fill) -> None:
        self._on_order_event(trade)

    def _report(self, state: OrderState) -> None:
        """Tell the engine, once per change (TWS repeats statuses)."""
        if self._reported.get(state.client_order_id) == state:
            return
        self._reported[state.client_order_id] = state
        if self._listener is not None:
            self._listener(state)

    # -- state ---------------------------------------------------------------------------------

    def _is_current(self, trade: ib_async.Trade) -> bool:
        """ib_async keeps this client id's orders up to date, and a final order stays as it
        is; another client id's open order is a copy of when IB was last asked (IB reports its
        changes only to the client that placed it)."""
        return trade.order.clientId == self._client_id or trade.orderStatus.status in FINAL

    def _trades(self, client_order_id: str) -> list[ib_async.Trade]:
        """The order's trades that ib_async keeps current."""
        return [
            t
            for t in self._ib.trades()
            if t.order.orderRef == client_order_id and self._is_current(t)
        ]

    def _known(
        self, client_order_id: str, asked: Sequence[ib_async.Trade] = ()
    ) -> OrderState | None:
        """The order's state from what ib_async keeps current and what IB just answered
        (`asked`); None if neither holds anything of it."""
        trades = self._trades(client_order_id)
        trades += [
            t
            for t in asked
            if t.order.orderRef == client_order_id and all(t is not k for k in trades)
        ]
        if trades:
            return self._state(client_order_id, trades)
        fills = [f for f in self._ib.fills() if f.execution.orderRef == client_order_id]
        if fills:  # executed, and no longer listed: an order from before this session
            ticker = self._tickers.get(client_order_id) or ticker_of(fills[0].contract)
            quantity = self._quantities.get(client_order_id)
            return fills_state(client_order_id, ticker, fills, quantity)
        return None

    def _state(self, client_order_id: str, trades: list[ib_async.Trade]) -> OrderState:
        # A live trade beats a completed-orders copy of the same order.
        trade = next((t for t in trades if t.orderStatus.orderId), trades[-1])
        order, contract = trade.order, trade.contract
        ticker = self._tickers.get(client_order_id) or ticker_of(contract)
        perm_ids = {t.order.permId for t in trades if t.order.permId}
        fills = to_fills(
            client_order_id,
            ticker,
            (
                fill
                for fill in [*trade.fills, *self._ib.fills()]
                if fill.execution.orderRef == client_order_id
                or (not fill.execution.orderRef and fill.execution.permId in perm_ids)
            ),
        )
        executed = sum((f.quantity for f in fills), Decimal(0))
        reported = max(
            _quantity(trade.orderStatus.filled),
            _decimal(order.filledQuantity) or Decimal(0),
        )
        filled = max(executed, reported)
        status, message = parse_status(trade, filled)
        average = _decimal(trade.orderStatus.avgFillPrice) or None
        average = _quantity(average) if average is not None else None
        if average is None and executed:
            average = sum((f.quantity * f.price for f in fills), Decimal(0)) / executed
        order_type = IB_ORDER_TYPES.get(order.orderType)
        return OrderState(
            client_order_id=client_order_id,
            status=status,
            filled_quantity=filled,
            average_fill_price=average,
            broker_order_id=str(order.permId) if order.permId else None,
            message=message,
            fills=fills,
            ticker=ticker,
            side=Side.BUY if order.action == "BUY" else Side.SELL,
            quantity=_quantity(order.totalQuantity),
            order_type=order_type,
            limit_price=_decimal(order.lmtPrice)
            if order.orderType in ("LMT", "STP LMT", "LOC")
            else None,
            stop_price=_decimal(order.auxPrice) if order.orderType in ("STP", "STP LMT") else None,
        )

    async def _lookup(self, client_order_id: str) -> OrderState | None:
        """Everything IB knows of an id: this session's orders, else IB is asked anew for the
        open orders of every client id (an earlier session may have used another one), the
        completed orders and today's executions (fills alone never settle it while IB may
        still describe the order)."""
        trades = self._trades(client_order_id)
        if trades:
            return self._state(client_order_id, trades)
        return self._known(client_order_id, await self._ask_ib("looking up"))

    async def get_order(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> OrderState | None:
        self._link()
        return await self._lookup(client_order_id)

    # -- contracts -----------------------------------------------------------------------------

    async def _details(self, ticker: str) -> ib_async.ContractDetails:
        instrument = parse_ticker(ticker)
        if instrument.ticker in self._contracts:
            return self._contracts[instrument.ticker]
        found = await self._ask(
            f"looking up {ticker}", self._ib.reqContractDetailsAsync(to_contract(instrument))
        )
        if not found:
            raise OrderRejected(f"IB {self.name}: IB knows no contract for {ticker}")
        if len(found) > 1:
            where = ", ".join(sorted({d.contract.exchange for d in found if d.contract}))
            raise OrderRejected(
                f"IB {self.name}: {ticker} is ambiguous (exchanges {where}):"
                f' name the exchange, e.g. "{found[0].contract.exchange}:{instrument.ticker}"'
            )
        details = found[0]
        if instrument.kind in ("STK", "OPT"):
            details.contract.exchange = "SMART"
        self._contracts[instrument.ticker] = details
        return details

    async def instrument(self, ticker: str) -> InstrumentRules:
        self._link()
        details = await self._details(ticker)
        return InstrumentRules(tick_size=_decimal(details.minTick), lot_size=Decimal(1))

    # -- orders --------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> OrderState:
        (state,) = await self.submit_bracket(request, ())
        return state

    async def submit_bracket(
        self, entry: OrderRequest, children: Sequence[OrderRequest]
    ) -> list[OrderState]:
        self._link()
        orders = [to_ib_order(r, self._account) for r in (entry, *children)]
        existing = await self._lookup(entry.client_order_id)
        if existing is not None:  # sent before (a retry): answer, send nothing
            states = [existing]
            for child in children:
                state = await self._lookup(child.client_order_id)
                if state is not None:
                    states.append(state)
            return states
        contract = (await self._details(entry.ticker)).contract
        assert contract is not None  # contract details always describe a contract
        for request in (entry, *children):
            self._tickers[request.client_order_id] = request.ticker
            self._quantities[request.client_order_id] = request.quantity
        trades = []
        with self._errors(f"placing {entry.client_order_id}"):
            self._link()
            parent = orders[0]
            if children:
                parent.transmit = False  # held by TWS until the last child is sent
            trades.append(self._ib.placeOrder(contract, parent))
            group = f"oca-{entry.client_order_id}"
            for index, order in enumerate(orders[1:], start=1):
                order.parentId = parent.orderId
                order.ocaGroup, order.ocaType = group, 2  # a partial fill reduces the other leg
                order.transmit = index == len(children)
                trades.append(self._ib.placeOrder(contract, order))
        await self._acknowledged(trades, entry.client_order_id)
        states = [self._state(t.order.orderRef, [t]) for t in trades]
        if states[0].status is OrderStatus.REJECTED:
            raise OrderRejected(states[0].message or "IB rejected the order")
        for state in states:
            self._reported.setdefault(state.client_order_id, state)
        return states

    async def _acknowledged(self, trades: list[ib_async.Trade], what: str) -> None:
        """Wait until IB answered every order (or refused it); no answer → outcome unknown."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        pending = ("PendingSubmit", "ApiPending")
        while any(t.orderStatus.status in pending for t in trades):
            if trades[0].orderStatus.status == "Cancelled":
                return  # the entry was refused: its children go with it (Inactive is not)
            if not self._ib.isConnected():
                raise BrokerUnavailable(f"IB {self.name}: {self._down()} (placing {what})")
            if loop.time() > deadline:
                raise BrokerUnavailable(
                    f"IB {self.name}: no answer for {what} within {self._timeout:g} s;"
                    " it is looked up by its id"
                )
            await asyncio.sleep(0.01)

    async def replace(self, client_order_id: str, request: OrderRequest) -> OrderState:
        self._link()
        existing = await self._lookup(request.client_order_id)
        if existing is not None:
            return existing
        # Not yet: IB modifies in place, and when it refuses a modification ib_async marks
        # the still-working order Cancelled locally — the journal would believe a stop moved
        # (or vanished) that IB still holds where it was. Refused, so nothing is pretended.
        raise OrderRejected(
            f"IB {self.name}: moving a working order ({client_order_id}) is not supported yet;"
            " the order stays as it is — move it in TWS if needed"
        )

    async def cancel(self, client_order_id: str, *, ticker: str | None = None) -> OrderState | None:
        self._link()
        trades = [t for t in self._trades(client_order_id) if t.orderStatus.status not in FINAL]
        if not trades:
            found = await self._lookup(client_order_id)
            elsewhere = [
                t
                for t in self._ib.trades()
                if t.order.orderRef == client_order_id and not self._is_current(t)
            ]
            if found is not None and not found.status.is_final and elsewhere:
                # IB's cancelOrder names an order id of the calling client id only.
                raise OrderRejected(
                    f"IB {self.name}: {client_order_id} was placed by API client id"
                    f" {elsewhere[0].order.clientId}, and IB lets only that client cancel it;"
                    " cancel it in TWS"
                )
            return found
        with self._errors(f"canceling {client_order_id}"):
            for trade in trades:
                self._ib.cancelOrder(trade.order)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while loop.time() < deadline and any(t.orderStatus.status not in FINAL for t in trades):
            await asyncio.sleep(0.01)
        return self._state(client_order_id, trades)

    async def open_orders(self, ticker: str | None = None) -> list[OrderState]:
        self._link()
        wanted = parse_ticker(ticker).ticker if ticker else None
        states = []
        for trade in self._ib.trades():
            if trade.orderStatus.status in FINAL or not self._is_current(trade):
                continue  # done, or another client id's (a copy, and not ours to cancel)
            client_order_id = trade.order.orderRef or f"ib-{trade.order.permId}"
            state = self._state(client_order_id, [trade])
            if wanted is None or canonical(state.ticker or "") == wanted:
                states.append(state)
        return states

    # -- account -------------------------------------------------------------------------------

    async def positions(self) -> list[Position]:
        self._link()
        async with self._lock:
            held = await self._ask("asking for positions", self._ib.reqPositionsAsync())
        positions = []
        for position in held:
            if self._account and position.account != self._account:
                continue
            multiplier = _decimal(position.contract.multiplier) or Decimal(1)
            average = _decimal(position.avgCost)
            positions.append(
                Position(
                    ticker_of(position.contract),
                    _quantity(position.position),
                    average / multiplier if average is not None else None,
                )
            )
        return positions

    async def position(self, ticker: str) -> Position:
        wanted = parse_ticker(ticker).ticker
        for position in await self.positions():
            if position.ticker == wanted:
                return Position(ticker, position.quantity, position.average_price)
        return Position(ticker, Decimal(0))

    async def quote(self, ticker: str) -> Decimal | None:
        return None

    async def account(self) -> AccountSummary:
        self._link()
        values = {
            v.tag: v.value
            for v in self._ib.accountValues(self._account or "")
            if v.currency in ("USD", "BASE")
        }
        if "NetLiquidation" not in values:
            summary = await self._ask("asking for the account", self._ib.accountSummaryAsync())
            values = {v.tag: v.value for v in summary if v.currency in ("USD", "BASE")}
        try:
            return AccountSummary(
                equity=Decimal(values["NetLiquidation"]),
                cash=Decimal(values["TotalCashValue"]),
                buying_power=Decimal(values["BuyingPower"]),
            )
        except (KeyError, InvalidOperation) as e:
            raise BrokerUnavailable(f"IB {self.name}: account values incomplete ({e})") from e

    async def observe_price(self, ticker: str, price: Decimal) -> list[OrderState]:
        return []
