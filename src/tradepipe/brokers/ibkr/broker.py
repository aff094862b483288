"""Interactive Brokers through TWS / IB Gateway (ib_async): our client order id is `orderRef`.

IB logs in inside TWS / Gateway; this adapter only opens the API socket (host, port, client id).
Things to know (https://interactivebrokers.github.io/tws-api/):

- IB does not enforce unique `orderRef`s: before placing, the id is looked up among this
  session's orders, else IB is asked for the open orders of every client id (an earlier session
  may have used another one), the completed orders and today's executions; found → its state.
  Another client id's order is only a copy (IB reports its changes to that client alone): it is
  asked for again at every lookup and not canceled (IB lets only its own client cancel it).
  Fills alone are "filled" only when they cover the quantity sent.
- `open_orders` asks IB anew for the working orders of every client id: an earlier session's
  (another client id) and those typed into TWS by hand are real working orders at the account,
  and reconciliation must see them. A hand-placed order carries no `orderRef`: it is listed as
  `ib-<permId>` (IB's permanent order id, the same at every call), reconciliation reports it as
  a foreign order, and `cancel` refuses it (cancel it in TWS).
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
- `replace` (breakeven moving a stop) is IB's modification in place: the same IB order (order
  id, permId, parent, OCA group) sent again with the new quantity / prices and the new client
  order id in `orderRef`, so a move sent again is found by the new id and never sent twice.
  It is done only once IB answers with the new values; the old id then answers canceled,
  "replaced by <new id>" (in this process only: after a restart IB knows the order by the new
  id alone). When IB refuses a modification, ib_async marks the still-working order Cancelled
  locally: that guess is never reported; IB is asked again for what it holds, and the refusal
  raises OrderRejected with IB's words and where the order stays. No answer in time →
  BrokerUnavailable (IB may or may not have moved it; the order is asked of IB at every lookup
  until IB shows it). A partially filled, held (Inactive) or another client's order is not
  moved (IB counts a modification's quantity from the order's start, and only the placing
  client may modify).
- Tickers: stocks `AAPL` or `NASDAQ:AAPL` (SMART-routed, USD); futures only with their contract
  month, `ESZ2026` (root, month code, year; `CME:ESZ2026` to name the exchange) — continuous
  symbols such as `NQ1!` are refused; options as OCC symbols, `AAPL 261218C00200000`.
- Time in force `cls` becomes a market-on-close (MOC) or limit-on-close (LOC) order.

This module does the talking; the translation without I/O (tickers, orders, statuses, fills) is
`tradepipe.brokers.ibkr.translation`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import ib_async

from tradepipe.brokers.base import AccountSummary, Capabilities, InstrumentRules, OrderListener
from tradepipe.brokers.ibkr.translation import (
    FINAL,
    canonical,
    contract_value,
    fills_state,
    parse_number,
    parse_ticker,
    to_contract,
    to_ib_modify,
    to_ib_order,
    to_position,
    trade_state,
)
from tradepipe.core.model import (
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
)
from tradepipe.errors import BrokerError, BrokerUnavailable, OrderRejected

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


@dataclass
class Move:
    """A modification sent to IB and not yet settled (`replace`)."""

    old_id: str
    new_id: str
    was: OrderState  # the order as it worked before
    status: str  # ib_async's status before (restored if ib_async guesses Cancelled)
    error: tuple[int, str] | None = None  # IB's answer, if an error


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
        self._moves: dict[int, Move] = {}  # IB order id → its unsettled modification
        self._moved: dict[str, OrderState] = {}  # a moved order's old id → its end
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

    def canonical_ticker(self, ticker: str) -> str:
        """IB's spelling: the contract's symbol (futures with their month, OCC options), the
        TradingView exchange prefix dropped; the same as the default for every ticker IB
        trades (tests/test_tickers.py), declared here so it cannot drift from `parse_ticker`."""
        return canonical(ticker)

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
        move = self._moves.get(request_id)
        if move is not None and move.error is None:
            move.error = (code, text)  # IB's answer to a modification (`replace` reads it)
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
            listed = await self._ask_open(doing)
            completed = await self._ask(
                f"{doing} completed orders", self._ib.reqCompletedOrdersAsync(True)
            )
            await self._ask(f"{doing} executions", self._ib.reqExecutionsAsync())
        return [*listed, *completed]

    async def _ask_open(self, doing: str) -> list[ib_async.Trade]:
        """IB's working orders of every client id and those placed in TWS by hand (under the
        lock). ib_async answers this client's own orders with the trades it keeps (their
        statuses only move forward), the others with copies as of now."""
        assert self._lock.locked()
        listed = list(await self._ask(f"{doing} open orders", self._ib.reqAllOpenOrdersAsync()))
        self._settle_moves(listed)
        return listed

    # -- events --------------------------------------------------------------------------------

    def _on_order_event(self, trade: ib_async.Trade) -> None:
        if self._move_of(trade) is not None:
            if trade.log and trade.log[-1].errorCode:
                # ib_async marks an order whose modification IB refused Cancelled: its guess,
                # never reported; IB is asked (`replace`, or the next lookup).
                return
            self._settle_moves()
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
        """ib_async keeps this client id's orders up to date (but for one being modified: IB
        is asked), and a final order stays as it is; another client id's open order is a copy
        of when IB was last asked (IB reports its changes only to the client that placed it)."""
        if trade.order.clientId == self._client_id:
            return self._move_of(trade) is None
        return trade.orderStatus.status in FINAL

    def _move_of(self, trade: ib_async.Trade) -> Move | None:
        if trade.order.clientId != self._client_id:
            return None
        return self._moves.get(trade.order.orderId)

    def _settle_moves(self, listed: Sequence[ib_async.Trade] = ()) -> None:
        """Modifications IB has answered. With the new values (its openOrder carries the new
        `orderRef`): the old id ends as replaced, the new one is reported. Refused (an error),
        and `listed` by IB as it was: the order is current again — a status ib_async guessed
        (Cancelled, ValidationError) where IB sent none gives way to the one before."""
        for trade in self._ib.trades():
            move = self._move_of(trade)
            if move is None:
                continue
            if trade.order.orderRef != move.new_id:
                if move.error is not None and any(t is trade for t in listed):
                    if trade.orderStatus.status in (*FINAL, "ValidationError"):
                        trade.orderStatus.status = move.status
                    del self._moves[trade.order.orderId]
                    self._report(self._state(move.old_id, [trade]))
                continue
            del self._moves[trade.order.orderId]
            moved = dataclasses.replace(
                move.was,
                status=OrderStatus.CANCELED,
                message=f"replaced by {move.new_id}: IB moved the order in place (IB order"
                f" {trade.order.permId} now carries {move.new_id})",
            )
            self._moved[move.old_id] = moved
            self._report(moved)
            self._report(self._state(move.new_id, [trade]))

    @staticmethod
    def _id_of(trade: ib_async.Trade) -> str:
        """Our client order id, or for an order placed in TWS by hand (no `orderRef`) one made
        of IB's permanent order id, the same at every call."""
        return trade.order.orderRef or f"ib-{trade.order.permId}"

    def _trades(self, client_order_id: str) -> list[ib_async.Trade]:
        """The order's trades that ib_async keeps current."""
        return [
            t
            for t in self._ib.trades()
            if self._id_of(t) == client_order_id and self._is_current(t)
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
            if self._id_of(t) == client_order_id and all(t is not k for k in trades)
        ]
        if trades:
            return self._state(client_order_id, trades)
        fills = [f for f in self._ib.fills() if f.execution.orderRef == client_order_id]
        if fills:  # executed, and no longer listed: an order from before this session
            ticker = self._tickers.get(client_order_id)
            return fills_state(
                client_order_id, fills, ticker, self._quantities.get(client_order_id)
            )
        return None

    def _state(self, client_order_id: str, trades: list[ib_async.Trade]) -> OrderState:
        ticker = self._tickers.get(client_order_id)
        return trade_state(client_order_id, trades, self._ib.fills(), ticker)

    async def _lookup(self, client_order_id: str) -> OrderState | None:
        """Everything IB knows of an id: this session's orders, else IB is asked anew for the
        open orders of every client id (an earlier session may have used another one), the
        completed orders and today's executions (fills alone never settle it while IB may
        still describe the order)."""
        trades = self._trades(client_order_id)
        if trades:
            return self._state(client_order_id, trades)
        if client_order_id in self._moved:
            return self._moved[client_order_id]
        asked = await self._ask_ib("looking up")
        return self._moved.get(client_order_id) or self._known(client_order_id, asked)

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
        kind, multiplier = contract_value(details)
        return InstrumentRules(
            tick_size=parse_number(details.minTick),
            lot_size=Decimal(1),
            kind=kind,
            multiplier=multiplier,
        )

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
        """IB's modification in place, done only once IB answers with the new values."""
        self._link()
        existing = await self._lookup(request.client_order_id)
        if existing is not None:  # moved before (a retry): answer, send nothing
            return existing
        trade = await self._movable(client_order_id)
        was = self._state(client_order_id, [trade])
        if was.filled_quantity:
            raise OrderRejected(
                f"IB {self.name}: {client_order_id} is partially filled ({was.filled_quantity}"
                f" of {was.quantity}); IB counts a modification's quantity from the order's"
                " start, so it is not moved: it stays working as it is"
            )
        modified = to_ib_modify(client_order_id, trade.order, request)
        order_id = trade.order.orderId
        move = Move(client_order_id, request.client_order_id, was, trade.orderStatus.status)
        self._tickers[request.client_order_id] = request.ticker
        self._quantities[request.client_order_id] = request.quantity
        self._link()  # (the lookups above awaited: the link may have dropped meanwhile)
        # Pending from here, and only if sent: a move that never left would otherwise keep
        # the order unmovable for the process's life.
        self._moves[order_id] = move
        try:
            with self._errors(f"moving {client_order_id}"):
                self._ib.placeOrder(trade.contract, modified)
        except BrokerError:
            self._moves.pop(order_id, None)
            raise
        await self._move_answered(trade, move)
        if move.error is not None:
            # Refused — or echoed and then refused: an error with the new values is ambiguous,
            # so IB is asked what it holds in both cases.
            await self._move_refused(trade, move)
        self._settle_moves()
        return self._state(move.new_id, [trade])

    async def _movable(self, client_order_id: str) -> ib_async.Trade:
        """The working order of this client that `replace` may modify, or why not."""
        pending = [m.new_id for m in self._moves.values() if m.old_id == client_order_id]
        if pending:
            raise OrderRejected(
                f"IB {self.name}: the move of {client_order_id} to {pending[0]} is not settled"
                " with IB (no answer, or what IB holds could not be read yet); it is not moved"
                " again before IB shows where it is (check it in TWS)"
            )
        trades = [t for t in self._trades(client_order_id) if t.orderStatus.status not in FINAL]
        if not trades:
            found = await self._lookup(client_order_id)
            elsewhere = self._elsewhere(client_order_id)
            if found is None:
                raise OrderRejected(f"IB {self.name}: no order {client_order_id} to move")
            if not found.status.is_final and elsewhere:
                raise OrderRejected(f"IB {self.name}: {self._not_ours(elsewhere[0])}")
            raise OrderRejected(
                f"IB {self.name}: order {client_order_id} is {found.status}: nothing to move"
            )
        (trade,) = trades
        status = trade.orderStatus.status
        if status == "Inactive":
            raise OrderRejected(
                f"IB {self.name}: {client_order_id} is held inactive by IB; it is not moved"
                " while IB holds it (it stays as it is: move it in TWS if needed)"
            )
        if status in ("PendingSubmit", "ApiPending"):
            raise OrderRejected(
                f"IB {self.name}: IB has not acknowledged {client_order_id} yet; it is not"
                " moved before IB does"
            )
        return trade

    async def _move_answered(self, trade: ib_async.Trade, move: Move) -> None:
        """Wait for IB's answer to a modification: its openOrder with the new `orderRef`, or
        an error for the order; none in time → BrokerUnavailable (IB may have moved it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        unknown = (
            f"IB may or may not have moved it: {move.new_id} is looked up, and the order"
            " is asked of IB at every lookup until IB shows it"
        )
        while trade.order.orderRef != move.new_id and move.error is None:
            if not self._ib.isConnected():
                raise BrokerUnavailable(
                    f"IB {self.name}: {self._down()} (moving {move.old_id}; {unknown})"
                )
            if loop.time() > deadline:
                raise BrokerUnavailable(
                    f"IB {self.name}: no answer within {self._timeout:g} s to moving"
                    f" {move.old_id} to {move.new_id}; {unknown}"
                )
            await asyncio.sleep(0.01)

    async def _move_refused(self, trade: ib_async.Trade, move: Move) -> None:
        """IB answered a modification with an error: ask IB what it holds now (ib_async
        marked the order Cancelled, or ValidationError, on its own), then raise OrderRejected
        with IB's words and where the order stays — unless IB did move it (a warning)."""
        assert move.error is not None
        code, words = move.error
        refused = f"IB {self.name}: IB refused to move {move.old_id} (error {code}: {words})"
        try:
            asked = await self._ask_ib(f"checking the refused move of {move.old_id}:")
        except BrokerError as e:
            # Where the order is, is not known: fate unknown (the contract), never "refused".
            raise BrokerUnavailable(
                f"{refused}; what IB holds now could not be read ({e}): the order is asked of"
                " IB at every lookup"
            ) from e
        if trade.order.orderRef == move.new_id:
            return  # IB moved it after all (its error was a warning): settled by the caller
        working = any(t is trade for t in asked)  # if so, settled by the asking
        self._moves.pop(trade.order.orderId, None)
        state = self._known(move.old_id, asked)
        if state is None:
            raise OrderRejected(f"{refused}; IB no longer lists {move.old_id}")
        self._report(state)
        if working:
            raise OrderRejected(f"{refused}; it stays working as IB holds it: {_shown(state)}")
        raise OrderRejected(f"{refused}; IB no longer lists it as working ({state.status})")

    async def cancel(self, client_order_id: str, *, ticker: str | None = None) -> OrderState | None:
        self._link()
        trades = self._cancelable(client_order_id)
        if not trades:
            found = await self._lookup(client_order_id)  # asks IB (settles a refused move)
            trades = self._cancelable(client_order_id)
        if not trades:
            elsewhere = self._elsewhere(client_order_id)
            if found is not None and not found.status.is_final and elsewhere:
                # IB's cancelOrder names an order id of the calling client id only.
                raise OrderRejected(f"IB {self.name}: {self._not_ours(elsewhere[0])}")
            return found
        with self._errors(f"canceling {client_order_id}"):
            for trade in trades:
                self._ib.cancelOrder(trade.order)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while loop.time() < deadline and any(t.orderStatus.status not in FINAL for t in trades):
            await asyncio.sleep(0.01)
        return self._state(client_order_id, trades)

    def _cancelable(self, client_order_id: str) -> list[ib_async.Trade]:
        """This client's trades of the order that ib_async does not hold for done (also while
        a move of it is unsettled: IB takes a cancel then too)."""
        return [
            t
            for t in self._ib.trades()
            if self._id_of(t) == client_order_id
            and t.order.clientId == self._client_id
            and t.orderStatus.status not in FINAL
        ]

    def _elsewhere(self, client_order_id: str) -> list[ib_async.Trade]:
        """Another client's (or TWS's) copies of the order."""
        return [
            t
            for t in self._ib.trades()
            if self._id_of(t) == client_order_id and t.order.clientId != self._client_id
        ]

    def _not_ours(self, trade: ib_async.Trade) -> str:
        """Why this client cannot cancel (or move) another client's working order."""
        who = (
            "in TWS by hand"
            if not trade.order.orderRef and not trade.order.clientId
            else f"by API client id {trade.order.clientId}"
        )
        return (
            f"{self._id_of(trade)} was placed {who}, and IB lets only that client change or"
            " cancel it; it stays working: change or cancel it in TWS"
        )

    async def open_orders(self, ticker: str | None = None) -> list[OrderState]:
        """Every working order at the account: IB is asked anew (reqAllOpenOrders) for those
        of every client id and those placed in TWS by hand, besides this client's own."""
        self._link()
        wanted = parse_ticker(ticker).ticker if ticker else None
        async with self._lock:
            listed = await self._ask_open("listing")
        own = [t for t in self._ib.trades() if t.order.clientId == self._client_id]
        others = [t for t in listed if all(t is not o for o in own)]
        states = []
        for trade in (*own, *others):
            if trade.orderStatus.status in FINAL:
                continue
            state = self._state(self._id_of(trade), [trade])
            if wanted is None or canonical(state.ticker or "") == wanted:
                states.append(state)
        return states

    # -- account -------------------------------------------------------------------------------

    async def positions(self) -> list[Position]:
        self._link()
        async with self._lock:
            held = await self._ask("asking for positions", self._ib.reqPositionsAsync())
        return [to_position(p) for p in held if not self._account or p.account == self._account]

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


def _shown(state: OrderState) -> str:
    """An order as a person reads it: "sell 5 AAPL stop 95"."""
    words = [str(state.side or ""), f"{state.quantity}", state.ticker or ""]
    if state.stop_price is not None:
        words.append(f"stop {state.stop_price}")
    if state.limit_price is not None:
        words.append(f"limit {state.limit_price}")
    if state.stop_price is None and state.limit_price is None:
        words.append(str(state.order_type or ""))
    return " ".join(w for w in words if w)
