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
  through the listener. The Gateway restarts daily (around 23:45–00:45 ET): that is a disconnect
  (`tradepipe.brokers.ibkr.session`, with IB's connectivity codes by name).
- Brackets use IB's transmit semantics: entry and take-profit are sent with transmit=False, the
  stop with transmit=True releases all three; the children carry `parentId` and one OCA group.
- `replace` (breakeven moving a stop) is IB's modification in place
  (`tradepipe.brokers.ibkr.moves`): the same IB order sent again with the new values and the new
  client order id in `orderRef`, done only once IB answers with them. A partially filled, held
  (Inactive) or another client's order is not moved (IB counts a modification's quantity from
  the order's start, and only the placing client may modify).
- Tickers: stocks `AAPL` or `NASDAQ:AAPL` (SMART-routed, USD); futures only with their contract
  month, `ESZ2026` (root, month code, year; `CME:ESZ2026` to name the exchange) — continuous
  symbols such as `NQ1!` are refused here (the engine maps them to a dated contract through
  `futures_contracts`, SPEC §15); options as OCC symbols, `AAPL 261218C00200000`, and
  `option_chain` lists them (`tradepipe.brokers.ibkr.chains`).
- Time in force `cls` becomes a market-on-close (MOC) or limit-on-close (LOC) order.

This module is the thin class; the connection is `session`, placing `placing`, modifications
`moves`, and the translation without I/O is `translation` (tickers, contracts) and `orders`
(orders, statuses, fills).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import ib_async

from tradepipe.brokers.base import (
    AccountSummary,
    Capabilities,
    DisconnectListener,
    InstrumentRules,
    OrderListener,
)
from tradepipe.brokers.ibkr import chains, lookup, moves, placing
from tradepipe.brokers.ibkr.moves import Move
from tradepipe.brokers.ibkr.orders import FINAL, to_position
from tradepipe.brokers.ibkr.session import DISCONNECTED, STARTUP_FETCH, Session
from tradepipe.brokers.ibkr.translation import (
    canonical,
    contract_value,
    parse_number,
    parse_ticker,
    to_contract,
)
from tradepipe.brokers.reporting import Reporter
from tradepipe.core.continuous import ListedFuture
from tradepipe.core.model import (
    OrderRequest,
    OrderState,
    OrderType,
    Position,
    TimeInForce,
)
from tradepipe.core.options import OptionContract
from tradepipe.errors import BrokerUnavailable, OrderRejected

log = logging.getLogger(__name__)

__all__ = ["CAPABILITIES", "DISCONNECTED", "STARTUP_FETCH", "IbkrBroker", "Move"]

CAPABILITIES = Capabilities(
    order_types=frozenset(OrderType),
    time_in_force=frozenset(TimeInForce),
    brackets=True,
    fractional=False,
    short_selling=True,
    quotes=False,
    lot_size=Decimal(1),
    # `option_chain` lists the contracts the engine selects from; `futures_contracts` the dated
    # contracts it maps `ES1!` to (SPEC §15).
    options=True,
    continuous_futures=True,
    fees_follow_fills=True,  # an execution's commission report comes after it
)


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
        self._account = account
        self._clock = clock
        self._session = Session(
            name,
            host=host,
            port=port,
            client_id=client_id,
            account=account,
            timeout=timeout,
            resync=self._resync,
        )
        self._reporter = Reporter(key=lambda state: state)  # TWS repeats statuses
        self._tickers: dict[str, str] = {}  # client order id → the ticker it was sent with
        self._quantities: dict[str, Decimal] = {}  # … and the quantity (this process only)
        self._contracts: dict[str, ib_async.ContractDetails] = {}
        self._moves: dict[int, Move] = {}  # IB order id → its unsettled modification
        self._moved: dict[str, OrderState] = {}  # a moved order's old id → its end
        self._ib.orderStatusEvent += self._on_order_event
        self._ib.execDetailsEvent += self._on_fill_event
        self._ib.commissionReportEvent += self._on_commission
        self._ib.errorEvent += self._on_error

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

    @property
    def _ib(self) -> ib_async.IB:
        return self._session.ib

    @property
    def _link_lost(self) -> str | None:
        """Error 1100's words until 1101 / 1102 (`session.CONNECTIVITY_LOST_CODES`)."""
        return self._session.link_lost

    @property
    def _client_id(self) -> int:
        return self._session.client_id

    def _errors(self, doing: str) -> contextlib.AbstractContextManager[None]:
        """IB's exceptions as ours (`Session.errors`, the adapter's one mapper)."""
        return self._session.errors(doing)

    def _link(self) -> None:
        self._session.link()

    async def _ask(self, doing: str, request: Any) -> Any:
        return await self._session.ask(doing, request)

    # -- life cycle ----------------------------------------------------------------------------

    def canonical_ticker(self, ticker: str) -> str:
        """IB's spelling: the contract's symbol (futures with their month, OCC options), the
        TradingView exchange prefix dropped; the same as the default for every ticker IB
        trades (tests/test_tickers.py), declared here so it cannot drift from `parse_ticker`."""
        return canonical(ticker)

    async def connect(self) -> None:
        await self._session.connect()

    async def close(self) -> None:
        await self._session.close()

    def listen(self, listener: OrderListener) -> None:
        self._reporter.listen(listener)

    def on_disconnect(self, listener: DisconnectListener) -> None:
        self._session.on_disconnect(listener)

    def _on_error(self, request_id: int, code: int, text: str, contract: Any) -> None:
        move = self._moves.get(request_id)
        if move is not None and move.error is None:
            move.error = (code, text)  # IB's answer to a modification (`replace` reads it)

    # -- events --------------------------------------------------------------------------------

    def _on_order_event(self, trade: ib_async.Trade) -> None:
        if moves.move_of(self, trade) is not None:
            if trade.log and trade.log[-1].errorCode:
                # ib_async marks an order whose modification IB refused Cancelled: its guess,
                # never reported; IB is asked (`replace`, or the next lookup).
                return
            moves.settle(self)
        if trade.order.orderRef:
            self._report(lookup.state_of(self, trade.order.orderRef, [trade]))

    def _on_fill_event(self, trade: ib_async.Trade, fill: ib_async.Fill) -> None:
        self._on_order_event(trade)

    def _on_commission(
        self, trade: ib_async.Trade, fill: ib_async.Fill, report: ib_async.CommissionReport
    ) -> None:
        """An execution's commission, which IB sends after the execution: the fill's fee."""
        self._on_order_event(trade)

    def _report(self, state: OrderState) -> None:
        """Tell the engine, once per change (TWS repeats statuses)."""
        self._reporter.report(state)

    # -- state ---------------------------------------------------------------------------------

    async def _lookup(self, client_order_id: str) -> OrderState | None:
        """Everything IB knows of an id (`lookup.lookup`; a seam the tests override)."""
        return await lookup.lookup(self, client_order_id)

    async def _resync(self) -> None:
        await lookup.resync(self)

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
        probe = to_contract(instrument)
        said: list[str] = []

        def heard(request_id: int, code: int, text: str, contract: Any) -> None:
            if contract is probe:  # IB's answer to this very request (error 200 …)
                said.append(f"IB error {code}: {text}")

        self._ib.errorEvent += heard
        try:
            found = await self._ask(f"looking up {ticker}", self._ib.reqContractDetailsAsync(probe))
        finally:
            self._ib.errorEvent -= heard
        if not found:
            # An option picked from a chain's cross product of expirations × strikes that IB
            # does not list ends here, before any order is sent.
            why = f" ({'; '.join(said)})" if said else ""
            raise OrderRejected(f"IB {self.name}: IB knows no contract for {ticker}{why}")
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

    async def option_chain(self, underlying: str) -> list[OptionContract]:
        """The stock's listed contracts from today on (`chains.option_chain`): expirations ×
        strikes of IB's chain parameters; one IB does not list is refused when qualified."""
        return await chains.option_chain(self, underlying)

    async def futures_contracts(self, root: str) -> list[ListedFuture]:
        """The root's dated contracts from today on, named as orders name them (`ESZ2026`)."""
        return await chains.futures_contracts(self, root)

    # -- orders --------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest) -> OrderState:
        (state,) = await self.submit_bracket(request, ())
        return state

    async def submit_bracket(
        self, entry: OrderRequest, children: Sequence[OrderRequest]
    ) -> list[OrderState]:
        """An order, or a bracket held by TWS until its last child (`placing.place`)."""
        return await placing.place(self, entry, children)

    async def replace(self, client_order_id: str, request: OrderRequest) -> OrderState:
        """IB's modification in place, done only once IB answers with the new values
        (`tradepipe.brokers.ibkr.moves`)."""
        return await moves.replace(self, client_order_id, request)

    async def cancel(self, client_order_id: str, *, ticker: str | None = None) -> OrderState | None:
        self._link()
        trades = lookup.cancelable(self, client_order_id)
        if not trades:
            found = await self._lookup(client_order_id)  # asks IB (settles a refused move)
            trades = lookup.cancelable(self, client_order_id)
        if not trades:
            elsewhere = lookup.elsewhere(self, client_order_id)
            if found is not None and not found.status.is_final and elsewhere:
                # IB's cancelOrder names an order id of the calling client id only.
                raise OrderRejected(f"IB {self.name}: {lookup.not_ours(self, elsewhere[0])}")
            return found
        with self._errors(f"canceling {client_order_id}"):
            for trade in trades:
                self._ib.cancelOrder(trade.order)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._session.timeout
        while loop.time() < deadline and any(t.orderStatus.status not in FINAL for t in trades):
            await self._session.changed(deadline)
        return lookup.state_of(self, client_order_id, trades)

    async def open_orders(self, ticker: str | None = None) -> list[OrderState]:
        """Every working order at the account: IB is asked anew (reqAllOpenOrders) for those
        of every client id and those placed in TWS by hand, besides this client's own."""
        self._link()
        wanted = parse_ticker(ticker).ticker if ticker else None
        async with self._session.lock:
            listed = await lookup.ask_open(self, "listing")
        own = [t for t in self._ib.trades() if t.order.clientId == self._client_id]
        others = [t for t in listed if all(t is not o for o in own)]
        states = []
        for trade in (*own, *others):
            if trade.orderStatus.status in FINAL:
                continue
            state = lookup.state_of(self, lookup.id_of(trade), [trade])
            if wanted is None or canonical(state.ticker or "") == wanted:
                states.append(state)
        return states

    # -- account -------------------------------------------------------------------------------

    async def positions(self) -> list[Position]:
        self._link()
        async with self._session.lock:
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
