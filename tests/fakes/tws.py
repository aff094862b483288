"""A fake TWS / IB Gateway that speaks the TWS API socket protocol to the real `ib_async.IB`.

It runs an asyncio TCP server on an ephemeral 127.0.0.1 port in its own thread and event loop,
negotiates `SERVER_VERSION` (the field layouts below follow ib_async 2.1.0's decoder for that
version), answers the startup sync, qualifies contracts, and keeps a small order book: market
orders fill at the price `set_price` gave the symbol, resting orders fill when a later price
crosses them, brackets are held until their transmit=True child arrives (IB's transmit
semantics), bracket children go live when the parent fills and cancel each other (OCA).

Faults: `reject_next(message)` (error 201), `hold_next(message)` (the next order goes Inactive:
IB holds it, it is not working, `activate` makes it work), `drop()` (closes the socket: fills
that happen while the client is away reach it only through the open-orders / executions replay
after it reconnects), `inject_error(1100 | 1101 | 1102)`, `set_down(True)` (refuses new
connections), `fill_part(ref, shares, price)` (a partial fill), `cancel_by_ib(ref)`,
`correct_execution(exec_id, price)` (IB's correction: the same execId with the next revision),
`forget_completed()` (completed orders are listed no more; today's executions still are).
Orders of every client id live in one book: `reqAllOpenOrders` lists them all, `reqOpenOrders`
only the asking client's, and live reports reach only the client that placed the order.
A placeOrder with the id of the client's working order modifies it (openOrder + orderStatus
with the new values, as TWS answers); `refuse_next_modify(code, message)` makes TWS refuse the
next modification with an error for the order id (the order stays as it was, and TWS sends
nothing else), `stall_next_modify(apply)` leaves the next one unanswered (applied or not);
`ignore_next(16, after=n)` leaves a request of that message id (16: reqAllOpenOrders)
unanswered, once, after answering `n` more of them.
`place_manual(...)` adds an order typed into TWS by hand (order id 0, client id 0, no orderRef:
an API client tells it apart only by its permId).
`list_options(symbol, expirations, strikes, missing=…)` lists an underlying's option chain:
`reqSecDefOptParams` answers its expirations × strikes (on SMART and on one exchange more, as IB
does), and `reqContractDetails` then knows only the listed contracts that are not `missing` (IB's
params are a cross product: not every pair exists). `list_futures(root, exchange, months)` lists a
root's dated contracts: a `reqContractDetails` without a month answers all of them, as IB does.
Options are priced by their local symbol (`set_price("AAPL  261218C00200000", …)`).
Each execution's commission report follows it (`commission_delay` seconds later, to the
connections open at the execution that are still open), and a `reqExecutions` replay carries the
reports TWS has after their executions, as TWS does.
`requests` logs every request the client sent, decoded, for assertions.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tests.fakes.loop import OwnLoop

SERVER_VERSION = 176  # ib_async 2.1.0 speaks 157..178; the layouts below are those of 176
ACCOUNT = "DU1234567"
UNSET = ""

# Month codes of futures contract months, for the local symbol (ESZ6).
MONTH_CODES = "FGHJKMNQUVXZ"


@dataclass
class Contract:
    con_id: int
    symbol: str
    sec_type: str = "STK"
    expiry: str = ""  # YYYYMMDD (futures: the last trade date; options: the expiry)
    strike: str = ""
    right: str = ""
    multiplier: str = ""
    exchange: str = "SMART"
    currency: str = "USD"
    local_symbol: str = ""
    trading_class: str = ""
    min_tick: str = "0.01"
    contract_month: str = ""  # futures: YYYYMM (CL's December trades its last in November)

    @property
    def price_key(self) -> str:
        """What `set_price` names: an option by its local symbol, the rest by their symbol."""
        return self.local_symbol if self.sec_type == "OPT" else self.symbol

    def fields(self, exchange: str | None = None) -> list[Any]:
        """conId … tradingClass as position, execDetails and openOrder carry them."""
        return [
            self.con_id,
            self.symbol,
            self.sec_type,
            self.expiry,
            self.strike or "0",
            self.right,
            self.multiplier,
            self.exchange if exchange is None else exchange,
            self.currency,
            self.local_symbol,
            self.trading_class,
        ]


@dataclass
class Order:
    order_id: int
    client_id: int
    perm_id: int
    contract: Contract
    action: str
    quantity: Decimal
    order_type: str
    limit_price: Decimal | None
    aux_price: Decimal | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    trailing_percent: Decimal | None
    outside_rth: bool
    status: str = "PendingSubmit"  # before transmission
    filled: Decimal = Decimal(0)
    average_price: Decimal = Decimal(0)
    why: str = ""  # completed status text (rejection, cancellation)
    trail_extreme: Decimal | None = None

    @property
    def is_working(self) -> bool:
        """Listed among open orders: live, waiting for its parent, or held Inactive."""
        return self.status in ("Submitted", "PreSubmitted", "Inactive")

    @property
    def is_done(self) -> bool:
        return self.status in ("Filled", "Cancelled")


@dataclass
class Execution:
    exec_id: str
    order: Order
    shares: Decimal
    price: Decimal
    cumulative: Decimal
    average: Decimal
    at: datetime
    # Whether TWS has its commission yet (its report may come well after the execution): a
    # reqExecutions replay then carries the report after the execution, as TWS does.
    commission_known: bool = False


@dataclass
class Session:
    writer: asyncio.StreamWriter
    client_id: int = -1
    account_updates: bool = False


def _decimal(text: str) -> Decimal | None:
    if text in ("", "1.7976931348623157e+308"):
        return None
    return Decimal(text)


def _strike(value: str) -> str:
    """A strike as the fake keys it: "200", "202.5" (never "200.0")."""
    return f"{Decimal(value).normalize():f}"


def _num(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


class FakeTws(OwnLoop):
    thread_name = "fake-tws"

    def __init__(self, account: str = ACCOUNT, cash: Decimal = Decimal(100_000)) -> None:
        self.account = account
        self.cash = cash
        self.prices: dict[str, Decimal] = {}
        self.orders: dict[int, Order] = {}
        self.executions: list[Execution] = []
        self.positions: dict[int, tuple[Contract, Decimal, Decimal]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.sessions: list[Session] = []
        self.contracts: dict[tuple[str, str, str], Contract] = {}
        self.unknown_symbols: set[str] = set()
        # Listed option chains: symbol → [(exchange, trading class, multiplier, expirations,
        # strikes)], and the (expiry, strike) pairs of those params that IB does not list.
        self.option_params: dict[str, list[tuple[str, str, str, list[str], list[str]]]] = {}
        self.missing_options: dict[str, set[tuple[str, str]]] = {}
        self.futures: dict[str, list[Contract]] = {}  # root → its listed dated contracts
        self.is_down = False
        self.commission_delay = 0.0  # seconds between an execution and its commission report
        self._rejections: list[str] = []
        self._holds: list[tuple[int, str]] = []
        self._modify_faults: list[tuple[str, int, str]] = []  # ("refuse", code, text) | stall
        self._ignored: list[list[int]] = []  # [message id, answered before ignoring one]
        self._forgotten: set[int] = set()  # order ids no longer listed as completed
        self._perm_ids = itertools.count(900_001)
        self._exec_ids = itertools.count(1)
        self._con_ids = itertools.count(100_001)
        self._next_order_id = 1
        self._server: asyncio.Server | None = None
        super().__init__()

    # -- life cycle ------------------------------------------------------------------------

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        for session in list(self.sessions):
            session.writer.close()
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0)

    # -- test controls ---------------------------------------------------------------------

    def set_price(self, symbol: str, price: float | Decimal | str) -> None:
        """The symbol trades at `price`: market orders fill, resting orders that it crosses
        fill, trailing stops follow it."""
        self._call(self._set_price, symbol, Decimal(str(price)))

    def reject_next(self, message: str) -> None:
        """The next new order is rejected with error 201 and this reason."""
        self._call(self._rejections.append, message)

    def hold_next(self, message: str, code: int = 399) -> None:
        """The next new order is accepted but held Inactive, with this warning (IB's words)."""
        self._call(self._holds.append, (code, message))

    def refuse_next_modify(
        self,
        code: int = 201,
        message: str = "Order rejected - reason:Stop price revision is disallowed after order"
        " has triggered",
    ) -> None:
        """TWS refuses the next modification: an error for the order id, nothing else; the
        order keeps working as it was."""
        self._call(self._modify_faults.append, ("refuse", code, message))

    def ignore_next(self, message_id: int, after: int = 0) -> None:
        """A request with this message id gets no answer (TWS busy, a lost reply), once,
        after `after` more of them were answered."""
        self._call(self._ignored.append, [message_id, after])

    def stall_next_modify(self, apply: bool) -> None:
        """TWS answers nothing to the next modification; with `apply` it still makes it."""
        self._call(self._modify_faults.append, ("apply" if apply else "drop", 0, ""))

    def modifications(self, order_ref: str) -> list[dict[str, Any]]:
        """The placeOrders after the first one of the IB order that carries `order_ref` now."""
        (order,) = self.order_by_ref(order_ref)
        return [p for p in self.logged("placeOrder") if p["orderId"] == order.order_id][1:]

    def activate(self, order_ref: str) -> None:
        """An Inactive order becomes active (working), and fills if the price allows."""

        def activate() -> None:
            for order in self.order_by_ref(order_ref):
                if order.status == "Inactive":
                    order.status = "Submitted"
                    self._send_status(order)
                    self._try_fill(order)

        self._call(activate)

    def fill_part(
        self, order_ref: str, shares: int | Decimal, price: float | Decimal | str
    ) -> None:
        """Part of a working order fills (the order keeps working for the rest)."""

        def fill() -> None:
            (order,) = [o for o in self.order_by_ref(order_ref) if not o.is_done]
            self._fill(order, Decimal(str(price)), Decimal(shares))

        self._call(fill)

    def cancel_by_ib(self, order_ref: str, why: str = "Order Canceled - reason:") -> None:
        """IB cancels what is left of an order (end of day, a risk check)."""

        def cancel() -> None:
            for order in self.order_by_ref(order_ref):
                if not order.is_done:
                    self._cancel(order, why)

        self._call(cancel)

    def correct_execution(self, exec_id: str, price: float | Decimal | str) -> str:
        """IB corrects an execution's price: the same execId with the next revision
        (".01.01" → ".01.02"), reported live; replays carry both revisions from then on."""

        def correct() -> str:
            old = next(e for e in self.executions if e.exec_id == exec_id)
            stem, _, revision = exec_id.rpartition(".")
            new_price = Decimal(str(price))
            corrected = Execution(
                exec_id=f"{stem}.{int(revision) + 1:02d}",
                order=old.order,
                shares=old.shares,
                price=new_price,
                cumulative=old.cumulative,
                average=new_price,
                at=old.at,
                commission_known=True,
            )
            self.executions.append(corrected)
            order = old.order
            signed = old.shares if order.action == "BUY" else -old.shares
            self.cash -= signed * (new_price - old.price) * Decimal(order.contract.multiplier or 1)
            self._send_to(order.client_id, self._exec_fields(-1, corrected))
            self._send_to(order.client_id, self._commission_fields(corrected))
            return corrected.exec_id

        result: str = self._call(correct)
        return result

    def forget_completed(self) -> None:
        """Completed orders are no longer listed (as after a Gateway restart); today's
        executions still are."""

        def forget() -> None:
            self._forgotten.update(o.order_id for o in self.orders.values() if o.is_done)

        self._call(forget)

    def drop(self) -> None:
        """Close every client connection, as a Gateway restart does."""
        self._call(self._drop)

    def set_down(self, down: bool) -> None:
        """While down, new connections are closed at once (the Gateway is restarting)."""
        self._call(setattr, self, "is_down", down)

    def inject_error(self, code: int, message: str) -> None:
        """A connectivity message (1100 lost, 1101 restored-data-lost, 1102 restored)."""
        self._call(self._broadcast, [4, 2, -1, code, message, ""])

    def repeat_status(self, order_id: int) -> None:
        """Send an order's last status and executions again (TWS repeats itself)."""

        def repeat() -> None:
            order = self.orders[order_id]
            self._send_status(order)
            for execution in self.executions:
                if execution.order is order:
                    self._send_to(order.client_id, self._exec_fields(-1, execution))

        self._call(repeat)

    def list_options(
        self,
        symbol: str,
        expirations: list[str],
        strikes: list[str],
        *,
        missing: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
        multiplier: str = "100",
        other_exchange: str = "CBOE",
    ) -> None:
        """The underlying's chain: expirations YYYYMMDD × strikes, but for `missing` pairs."""

        def add() -> None:
            entry = (symbol, multiplier, sorted(expirations), [_strike(k) for k in strikes])
            self.option_params[symbol] = [
                ("SMART", *entry),
                (other_exchange, *entry),
            ]
            self.missing_options[symbol] = {(e, _strike(k)) for e, k in missing}

        self._call(add)

    def list_futures(
        self,
        root: str,
        exchange: str,
        months: list[tuple[str, str]],
        *,
        multiplier: str = "50",
        min_tick: str = "0.25",
    ) -> None:
        """The root's dated contracts: (contract month YYYYMM, last trade date YYYYMMDD)."""

        def add() -> None:
            listed = []
            for month, last_trade in months:
                contract = Contract(
                    next(self._con_ids),
                    root,
                    "FUT",
                    expiry=last_trade,
                    multiplier=multiplier,
                    exchange=exchange,
                    local_symbol=f"{root}{MONTH_CODES[int(month[4:6]) - 1]}{month[3]}",
                    trading_class=root,
                    min_tick=min_tick,
                    contract_month=month,
                )
                self.contracts[("FUT", root, month)] = contract
                listed.append(contract)
            self.futures[root] = listed

        self._call(add)

    def add_position(self, symbol: str, quantity: Decimal, average: Decimal) -> None:
        def add() -> None:
            contract = self._stock(symbol)
            self.positions[contract.con_id] = (contract, quantity, average)

        self._call(add)

    def place_manual(
        self,
        symbol: str,
        action: str,
        quantity: int,
        order_type: str = "LMT",
        price: float | Decimal | str = "90",
    ) -> int:
        """An order typed into TWS by hand: IB reports order id 0 and client id 0 for it, no
        orderRef, and lists it to reqAllOpenOrders; answers its permId. `price` is the limit
        (LMT) or the stop (STP)."""

        def place() -> int:
            value = Decimal(str(price))
            order = Order(
                order_id=0,
                client_id=0,
                perm_id=next(self._perm_ids),
                contract=self._stock(symbol),
                action=action,
                quantity=Decimal(quantity),
                order_type=order_type,
                limit_price=value if order_type == "LMT" else None,
                aux_price=value if order_type == "STP" else None,
                tif="DAY",
                oca_group="",
                account=self.account,
                order_ref="",
                transmit=True,
                parent_id=0,
                trailing_percent=None,
                outside_rth=False,
                status="Submitted",
            )
            self.orders[-order.perm_id] = order  # its order id (0) names no order
            self._try_fill(order)
            return order.perm_id

        perm_id: int = self._call(place)
        return perm_id

    def order_by_ref(self, order_ref: str) -> list[Order]:
        return [o for o in list(self.orders.values()) if o.order_ref == order_ref]

    def logged(self, name: str) -> list[dict[str, Any]]:
        return [fields for kind, fields in list(self.requests) if kind == name]

    def connected_clients(self) -> list[int]:
        return [s.client_id for s in list(self.sessions) if s.client_id >= 0]

    # -- wire ------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer)
        try:
            if self.is_down:
                return
            if await reader.readexactly(4) != b"API\0":
                return
            await self._read(reader)  # "v157..178": we answer with our version
            self._write(session, [SERVER_VERSION, "20261120 15:00:00 UTC"])
            self.sessions.append(session)
            while True:
                fields = await self._read(reader)
                self._handle(session, fields)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if session in self.sessions:
                self.sessions.remove(session)
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> list[str]:
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        text = (await reader.readexactly(size)).decode()
        return text.split("\0")[:-1]

    @staticmethod
    def _write(session: Session, fields: list[Any]) -> None:
        if session.writer.is_closing():
            return
        payload = "".join(f"{'' if f is None else f}\0" for f in fields).encode()
        session.writer.write(struct.pack(">I", len(payload)) + payload)

    def _send_to(self, client_id: int, fields: list[Any]) -> None:
        for session in self.sessions:
            if session.client_id == client_id:
                self._write(session, fields)

    def _broadcast(self, fields: list[Any]) -> None:
        for session in self.sessions:
            if session.client_id >= 0:
                self._write(session, fields)

    def _drop(self) -> None:
        for session in list(self.sessions):
            session.writer.close()
            self.sessions.remove(session)

    # -- requests --------------------------------------------------------------------------

    def _handle(self, session: Session, fields: list[str]) -> None:
        kind = int(fields[0])
        pending = next((i for i in self._ignored if i[0] == kind), None)
        if pending is not None and pending[1] > 0:
            pending[1] -= 1
        elif pending is not None:
            self._ignored.remove(pending)
            self.requests.append(("ignored", {"fields": fields}))
            return
        handler = {
            71: self._start_api,
            61: self._req_positions,
            5: self._req_open_orders,
            16: self._req_all_open_orders,
            99: self._req_completed_orders,
            6: self._req_account_updates,
            76: self._req_account_updates_multi,
            62: self._req_account_summary,
            7: self._req_executions,
            9: self._req_contract_details,
            78: self._req_sec_def_opt_params,
            3: self._place_order,
            4: self._cancel_order,
            8: self._req_ids,
            49: self._req_current_time,
        }.get(kind)
        if handler is None:
            self.requests.append(("unhandled", {"fields": fields}))
            return
        handler(session, fields)

    def _start_api(self, session: Session, fields: list[str]) -> None:
        client_id = int(fields[2])
        self.requests.append(("startApi", {"clientId": client_id}))
        if client_id in self.connected_clients():  # TWS refuses a second client with one id
            self._write(session, [4, 2, -1, 326, "client id is already in use", ""])
            session.writer.close()
            return
        session.client_id = client_id
        self._write(session, [9, 1, self._next_id()])
        self._write(session, [15, 1, self.account])

    def _next_id(self) -> int:
        return max([self._next_order_id, *[o.order_id + 1 for o in self.orders.values()]])

    def _req_ids(self, session: Session, fields: list[str]) -> None:
        self._write(session, [9, 1, self._next_id()])

    def _req_current_time(self, session: Session, fields: list[str]) -> None:
        self._write(session, [49, 1, int(datetime.now(UTC).timestamp())])

    def _req_positions(self, session: Session, fields: list[str]) -> None:
        self.requests.append(("reqPositions", {}))
        for contract, quantity, average in self.positions.values():
            if quantity:
                self._write(
                    session,
                    [61, 3, self.account, *contract.fields(), _num(quantity), _num(average)],
                )
        self._write(session, [62, 1])

    def _req_open_orders(self, session: Session, fields: list[str], every: bool = False) -> None:
        self.requests.append(("reqAllOpenOrders" if every else "reqOpenOrders", {}))
        for order in self.orders.values():
            if order.is_working and (every or order.client_id == session.client_id):
                self._write(session, self._open_order_fields(order))
                self._write(session, self._status_fields(order))
        self._write(session, [53, 1])

    def _req_all_open_orders(self, session: Session, fields: list[str]) -> None:
        self._req_open_orders(session, fields, every=True)

    def _req_completed_orders(self, session: Session, fields: list[str]) -> None:
        self.requests.append(("reqCompletedOrders", {"apiOnly": fields[1]}))
        for order in self.orders.values():
            if order.is_done and order.order_id not in self._forgotten:
                self._write(session, self._completed_order_fields(order))
        self._write(session, [102])

    def _account_values(self) -> list[tuple[str, str]]:
        held = sum(
            (q * (self.prices.get(c.symbol) or a) for c, q, a in self.positions.values()),
            Decimal(0),
        )
        net = self.cash + held
        return [
            ("NetLiquidation", _num(net)),
            ("TotalCashValue", _num(self.cash)),
            ("BuyingPower", _num(max(self.cash, Decimal(0)) * 4)),
        ]

    def _req_account_updates(self, session: Session, fields: list[str]) -> None:
        self.requests.append(("reqAccountUpdates", {"subscribe": fields[2], "account": fields[3]}))
        session.account_updates = fields[2] == "1"
        if session.account_updates:
            self._send_account(session)
            self._write(session, [54, 1, self.account])

    def _send_account(self, session: Session) -> None:
        for tag, value in self._account_values():
            self._write(session, [6, 2, tag, value, "USD", self.account])

    def _req_account_updates_multi(self, session: Session, fields: list[str]) -> None:
        self.requests.append(("reqAccountUpdatesMulti", {"reqId": fields[2]}))
        request_id = fields[2]
        for tag, value in self._account_values():
            self._write(session, [73, 1, request_id, self.account, "", tag, value, "USD"])
        self._write(session, [74, 1, request_id])

    def _req_account_summary(self, session: Session, fields: list[str]) -> None:
        self.requests.append(("reqAccountSummary", {"reqId": fields[2]}))
        request_id = fields[2]
        for tag, value in self._account_values():
            self._write(session, [63, 1, request_id, self.account, tag, value, "USD"])
        self._write(session, [64, 1, request_id])

    def _req_executions(self, session: Session, fields: list[str]) -> None:
        request_id, client_id = int(fields[2]), int(fields[3] or 0)
        self.requests.append(("reqExecutions", {"reqId": request_id, "clientId": client_id}))
        for execution in self.executions:
            if client_id in (0, execution.order.client_id):
                self._write(session, self._exec_fields(request_id, execution))
                if execution.commission_known:
                    self._write(session, self._commission_fields(execution))
        self._write(session, [55, 1, request_id])

    # -- contracts -------------------------------------------------------------------------

    def _stock(self, symbol: str) -> Contract:
        key = ("STK", symbol, "")
        if key not in self.contracts:
            self.contracts[key] = Contract(
                next(self._con_ids), symbol, local_symbol=symbol, trading_class="NMS"
            )
        return self.contracts[key]

    def _resolve(self, sec_type: str, symbol: str, month: str, right: str, strike: str):
        """The contract a reqContractDetails describes, or None (IB's error 200)."""
        if symbol in self.unknown_symbols:
            return None
        if sec_type == "STK":
            return self._stock(symbol)
        if sec_type == "FUT" and symbol in self.futures:
            return next(
                (c for c in self.futures[symbol] if month[:6] in (c.contract_month, c.expiry[:6])),
                None,
            )
        if sec_type == "OPT" and symbol in self.option_params:
            _, _, _, expirations, strikes = self.option_params[symbol][0]
            listed = month in expirations and strike and _strike(strike) in strikes
            if not listed or (month, _strike(strike)) in self.missing_options[symbol]:
                return None
        if sec_type == "FUT" and len(month) >= 6:
            key = ("FUT", symbol, month[:6])
            if key not in self.contracts:
                year, number = month[:4], int(month[4:6])
                self.contracts[key] = Contract(
                    next(self._con_ids),
                    symbol,
                    "FUT",
                    expiry=f"{month[:6]}18",
                    multiplier="50" if symbol == "ES" else "20",
                    exchange="CME",
                    local_symbol=f"{symbol}{MONTH_CODES[number - 1]}{year[-1]}",
                    trading_class=symbol,
                    min_tick="0.25",
                )
            return self.contracts[key]
        if sec_type == "OPT" and len(month) == 8 and right and strike:
            key = ("OPT", symbol, f"{month}{right}{Decimal(strike).normalize():f}")
            if key not in self.contracts:
                self.contracts[key] = Contract(
                    next(self._con_ids),
                    symbol,
                    "OPT",
                    expiry=month,
                    strike=f"{Decimal(strike).normalize():f}",
                    right=right,
                    multiplier="100",
                    # IB's local symbol of an option is the OCC one, the root padded to 6.
                    local_symbol=f"{symbol:<6}{month[2:]}{right}{int(Decimal(strike) * 1000):08d}",
                    trading_class=symbol,
                )
            return self.contracts[key]
        return None

    def _req_contract_details(self, session: Session, fields: list[str]) -> None:
        request_id = fields[2]
        _, symbol, sec_type, month, strike, right, multiplier, exchange = fields[3:11]
        self.requests.append(
            (
                "reqContractDetails",
                {
                    "symbol": symbol,
                    "secType": sec_type,
                    "month": month,
                    "strike": strike,
                    "right": right,
                    "multiplier": multiplier,
                    "exchange": exchange,
                },
            )
        )
        right = {"CALL": "C", "PUT": "P"}.get(right, right)
        strike = "" if strike in ("", "0", "0.0") else strike
        if sec_type == "FUT" and not month and symbol in self.futures:
            listed = [c for c in self.futures[symbol] if exchange in ("", c.exchange)]
        else:
            contract = self._resolve(sec_type, symbol, month, right, strike)
            listed = [] if contract is None else [contract]
        if not listed:
            message = "No security definition has been found for the request"
            self._write(session, [4, 2, request_id, 200, message, ""])
            return
        for contract in listed:
            self._write(session, self._details_fields(request_id, contract))
        self._write(session, [52, 1, request_id])

    def _req_sec_def_opt_params(self, session: Session, fields: list[str]) -> None:
        """IB's option chain parameters: per exchange and trading class, the expirations and
        the strikes (a cross product: `reqContractDetails` says which pairs exist)."""
        request_id, symbol, fut_fop_exchange, sec_type, con_id = fields[1:6]
        self.requests.append(
            (
                "reqSecDefOptParams",
                {
                    "symbol": symbol,
                    "exchange": fut_fop_exchange,
                    "secType": sec_type,
                    "conId": con_id,
                },
            )
        )
        for exchange, trading_class, multiplier, expirations, strikes in self.option_params.get(
            symbol, []
        ):
            self._write(
                session,
                [
                    75,
                    request_id,
                    exchange,
                    con_id,
                    trading_class,
                    multiplier,
                    len(expirations),
                    *expirations,
                    len(strikes),
                    *strikes,
                ],
            )
        self._write(session, [76, request_id])

    def _details_fields(self, request_id: str, c: Contract) -> list[Any]:
        """One contractDetails message (msg 10) at SERVER_VERSION."""
        return [
            10,
            request_id,
            c.symbol,
            c.sec_type,
            c.expiry,
            c.strike or "0",
            c.right,
            c.exchange,
            c.currency,
            c.local_symbol,
            c.trading_class,  # marketName
            c.trading_class,
            c.con_id,
            c.min_tick,
            c.multiplier,
            "ACTIVETIM,LMT,MKT,STP,STPLMT,TRAIL",
            "SMART,NASDAQ,CME",
            1,  # priceMagnifier
            0,  # underConId
            c.symbol,  # longName
            "NASDAQ" if c.sec_type == "STK" else "",
            c.contract_month or c.expiry[:6],  # contractMonth
            "",
            "",
            "",
            "US/Eastern",
            "",
            "",
            "",
            "",
            0,  # numSecIds
            1,  # aggGroup
            "",
            "",
            "26",  # marketRuleIds
            c.expiry,
            "COMMON" if c.sec_type == "STK" else "",
            "1",
            "1",
            "1",
        ]

    # -- orders ----------------------------------------------------------------------------

    def _place_order(self, session: Session, fields: list[str]) -> None:
        order_id = int(fields[1])
        # The 12 contract fields come first; the order's follow (ib_async client.placeOrder).
        sec_type, symbol, month, strike, right = (
            fields[4],
            fields[3],
            fields[5],
            fields[6],
            fields[7],
        )
        request = {
            "orderId": order_id,
            "symbol": symbol,
            "secType": sec_type,
            "action": fields[16],
            "totalQuantity": fields[17],
            "orderType": fields[18],
            "lmtPrice": fields[19],
            "auxPrice": fields[20],
            "tif": fields[21],
            "ocaGroup": fields[22],
            "account": fields[23],
            "orderRef": fields[26],
            "transmit": fields[27] == "1",
            "parentId": int(fields[28] or 0),
            "outsideRth": fields[33] == "1",
            "trailingPercent": fields[70],
        }
        self.requests.append(("placeOrder", request))
        existing = self.orders.get(order_id)
        if existing is not None and existing.client_id == session.client_id:
            self._modify(existing, request)
            return
        if existing is not None:
            self._write(session, [4, 2, order_id, 103, "Duplicate order id", ""])
            return
        contract = self._resolve(
            sec_type, symbol, month, right, "" if strike in ("", "0", "0.0") else strike
        )
        if contract is None:
            self._write(session, [4, 2, order_id, 200, "No security definition found", ""])
            return
        order = Order(
            order_id=order_id,
            client_id=session.client_id,
            perm_id=next(self._perm_ids),
            contract=contract,
            action=request["action"],
            quantity=Decimal(request["totalQuantity"]),
            order_type=request["orderType"],
            limit_price=_decimal(request["lmtPrice"]),
            aux_price=_decimal(request["auxPrice"]),
            tif=request["tif"],
            oca_group=request["ocaGroup"],
            account=request["account"] or self.account,
            order_ref=request["orderRef"],
            transmit=request["transmit"],
            parent_id=request["parentId"],
            trailing_percent=_decimal(request["trailingPercent"]),
            outside_rth=request["outsideRth"],
        )
        self.orders[order_id] = order
        self._next_order_id = max(self._next_order_id, order_id + 1)
        if self._rejections:
            reason = self._rejections.pop(0)
            order.status, order.why = "Cancelled", f"Order rejected - reason:{reason}"
            self._send_to(order.client_id, [4, 2, order_id, 201, order.why, ""])
            return
        if not order.transmit:
            return  # held in TWS until a transmit=True order of its group arrives
        parent = self.orders.get(order.parent_id) if order.parent_id else None
        if parent is not None and parent.status == "Cancelled":
            for leg in self._children(parent):  # a bracket whose entry was refused
                if leg.status == "PendingSubmit":
                    leg.status, leg.why = "Cancelled", "Order rejected - reason:parent order"
                    self._send_to(leg.client_id, [4, 2, leg.order_id, 201, leg.why, ""])
            return
        if parent is None:
            members = [order]
        elif parent.status == "PendingSubmit":  # the last leg of a bracket: transmit it all
            held = [o for o in self._children(parent) if o.status == "PendingSubmit"]
            members = [parent, *held]
        else:
            members = [order]
        hold = self._holds.pop(0) if self._holds else None
        for member in members:
            if member.parent_id and self.orders[member.parent_id].status != "Filled":
                member.status = "PreSubmitted"  # a bracket leg waits for its parent's fill
            elif hold is not None and member is members[0]:
                # IB's words first (ib_async logs them on the trade), then the status.
                member.status = "Inactive"
                self._send_to(member.client_id, [4, 2, member.order_id, hold[0], hold[1], ""])
            else:
                member.status = "Submitted"
            self._send_open(member)
        for member in members:
            self._try_fill(member)

    def _modify(self, order: Order, request: dict[str, Any]) -> None:
        if order.is_done:
            why = f"Order {order.order_id} cannot be modified, state: {order.status}"
            self._send_to(order.client_id, [4, 2, order.order_id, 10148, why, ""])
            return
        fault, code, message = self._modify_faults.pop(0) if self._modify_faults else ("", 0, "")
        if fault == "refuse":
            self._send_to(order.client_id, [4, 2, order.order_id, code, message, ""])
            return
        if fault == "drop":
            return
        order.quantity = Decimal(request["totalQuantity"])
        order.order_type = request["orderType"]
        order.limit_price = _decimal(request["lmtPrice"])
        order.aux_price = _decimal(request["auxPrice"])
        order.trailing_percent = _decimal(request["trailingPercent"])
        order.order_ref = request["orderRef"]
        order.tif = request["tif"]
        if fault == "apply":
            return
        self._send_open(order)
        self._try_fill(order)

    def _cancel_order(self, session: Session, fields: list[str]) -> None:
        order_id = int(fields[2])
        self.requests.append(("cancelOrder", {"orderId": order_id}))
        order = self.orders.get(order_id)
        if order is None or order.is_done:
            state = order.status if order else "unknown"
            why = f"Order {order_id} cannot be cancelled, state: {state}."
            self._write(session, [4, 2, order_id, 10148, why, ""])
            return
        self._cancel(order, "Order Canceled - reason:")

    def _cancel(self, order: Order, why: str) -> None:
        order.status, order.why = "Cancelled", why
        self._send_status(order)
        self._send_to(order.client_id, [4, 2, order.order_id, 202, why, ""])
        for child in self._children(order):
            if not child.is_done:
                self._cancel(child, f"Order Canceled - reason: parent {order.order_id} canceled")

    def _children(self, order: Order) -> list[Order]:
        if not order.order_id:  # placed by hand: no bracket
            return []
        return [o for o in self.orders.values() if o.parent_id == order.order_id]

    def _set_price(self, symbol: str, price: Decimal) -> None:
        self.prices[symbol] = price
        for order in list(self.orders.values()):
            if order.contract.price_key == symbol and order.status == "Submitted":
                self._try_fill(order)
        for session in self.sessions:
            if session.account_updates:
                self._send_account(session)

    def _fill_price(self, order: Order, price: Decimal) -> Decimal | None:
        buy = order.action == "BUY"
        kind = order.order_type
        if kind in ("MKT", "MOC"):
            return price
        if kind in ("LMT", "LOC"):
            assert order.limit_price is not None
            crosses = price <= order.limit_price if buy else price >= order.limit_price
            return (min if buy else max)(price, order.limit_price) if crosses else None
        if kind in ("STP", "STP LMT"):
            assert order.aux_price is not None
            triggered = price >= order.aux_price if buy else price <= order.aux_price
            if kind == "STP" or not triggered:
                return price if triggered else None
            assert order.limit_price is not None
            crosses = price <= order.limit_price if buy else price >= order.limit_price
            return price if crosses else None
        if kind == "TRAIL":
            better = min if buy else max
            order.trail_extreme = (
                price if order.trail_extreme is None else better(order.trail_extreme, price)
            )
            sign = 1 if buy else -1
            if order.trailing_percent is not None:
                stop = order.trail_extreme * (1 + sign * order.trailing_percent / 100)
            else:
                assert order.aux_price is not None
                stop = order.trail_extreme + sign * order.aux_price
            triggered = price >= stop if buy else price <= stop
            return price if triggered else None
        return None

    def _try_fill(self, order: Order) -> None:
        if order.status != "Submitted":
            return
        price = self.prices.get(order.contract.price_key)
        fill_price = None if price is None else self._fill_price(order, price)
        if fill_price is None:
            if order.tif in ("IOC", "FOK"):
                self._cancel(order, f"Order Canceled - reason: {order.tif} did not fill")
            return
        self._fill(order, fill_price)

    def _fill(self, order: Order, price: Decimal, shares: Decimal | None = None) -> None:
        """`shares` of the order (all that is left by default) execute at `price`."""
        shares = order.quantity - order.filled if shares is None else shares
        order.average_price = (order.average_price * order.filled + price * shares) / (
            order.filled + shares
        )
        order.filled += shares
        if order.filled == order.quantity:
            order.status = "Filled"
        execution = Execution(
            exec_id=f"0000e0d5.{next(self._exec_ids):08d}.01.01",
            order=order,
            shares=shares,
            price=price,
            cumulative=order.filled,
            average=order.average_price,
            at=datetime.now(UTC),
        )
        self.executions.append(execution)
        self._book(order, shares, price)
        # Live reports (a client that is away learns this from the replay after reconnecting).
        self._send_to(order.client_id, self._exec_fields(-1, execution))
        self._send_status(order)
        if self.commission_delay:  # as IB may: the report well after the execution
            # To the connections open now, if still open then: a client that went away meanwhile
            # learns it from the executions replay (`reqExecutions`) after it connects again.
            open_now = [s for s in self.sessions if s.client_id == order.client_id]
            asyncio.get_running_loop().call_later(
                self.commission_delay, self._report_commission, execution, open_now
            )
        else:
            self._report_commission(execution, None)
        if order.status != "Filled":
            return  # a partial fill: the order keeps working, its bracket waits
        for child in self._children(order):  # the bracket goes live
            if child.status == "PreSubmitted":
                child.status = "Submitted"
                self._send_status(child)
        if order.oca_group:
            for other in self.orders.values():
                if other is not order and other.oca_group == order.oca_group and not other.is_done:
                    self._cancel(other, f"Order Canceled - reason: OCA group {order.oca_group}")
        for child in self._children(order):
            self._try_fill(child)

    def _report_commission(self, execution: Execution, sessions: list[Session] | None) -> None:
        """TWS has the execution's commission: reported live to `sessions` that are still open
        (None: every connection of the order's client id)."""
        execution.commission_known = True
        fields = self._commission_fields(execution)
        if sessions is None:
            self._send_to(execution.order.client_id, fields)
            return
        for session in sessions:
            if session in self.sessions:
                self._write(session, fields)

    def _book(self, order: Order, shares: Decimal, price: Decimal) -> None:
        signed = shares if order.action == "BUY" else -shares
        multiplier = Decimal(order.contract.multiplier or 1)
        contract, held, average = self.positions.get(
            order.contract.con_id, (order.contract, Decimal(0), Decimal(0))
        )
        cost = price * multiplier
        new = held + signed
        if held == 0 or (held > 0) == (signed > 0):
            average = (held * average + signed * cost) / new if new else Decimal(0)
        elif (new > 0) != (held > 0) and new != 0:
            average = cost
        self.positions[contract.con_id] = (contract, new, average if new else Decimal(0))
        self.cash -= signed * cost

    # -- messages --------------------------------------------------------------------------

    def _send_open(self, order: Order) -> None:
        self._send_to(order.client_id, self._open_order_fields(order))
        self._send_status(order)

    def _send_status(self, order: Order) -> None:
        self._send_to(order.client_id, self._status_fields(order))

    def _status_fields(self, o: Order) -> list[Any]:
        return [
            3,
            o.order_id,
            o.status,
            _num(o.filled),
            _num(o.quantity - o.filled),
            _num(o.average_price),
            o.perm_id,
            o.parent_id,
            _num(o.average_price),
            o.client_id,
            "",
            0,
        ]

    @staticmethod
    def _commission_fields(e: Execution) -> list[Any]:
        return [59, 1, e.exec_id, "1.0", "USD", "0", "", ""]

    def _exec_fields(self, request_id: int, e: Execution) -> list[Any]:
        o = e.order
        return [
            11,
            request_id,
            o.order_id,
            *o.contract.fields(exchange="ISLAND"),
            e.exec_id,
            e.at.strftime("%Y%m%d %H:%M:%S UTC"),
            o.account,
            "ISLAND",
            "BOT" if o.action == "BUY" else "SLD",
            _num(e.shares),
            _num(e.price),
            o.perm_id,
            o.client_id,
            0,
            _num(e.cumulative),
            _num(e.average),
            o.order_ref,
            "",
            "",
            "",
            1,
        ]

    def _order_head(self, o: Order) -> list[Any]:
        """action … origin, as openOrder and completedOrder both carry them."""
        return [
            o.action,
            _num(o.quantity),
            o.order_type,
            _num(o.limit_price),
            _num(o.aux_price),
            o.tif,
            o.oca_group,
            o.account,
            "O",
            0,
        ]

    def _open_order_fields(self, o: Order) -> list[Any]:
        # Layout: ib_async 2.1.0 Decoder.openOrder at server version 176.
        fields: list[Any] = [5, o.order_id, *o.contract.fields(), *self._order_head(o)]
        fields += [o.order_ref, o.client_id, o.perm_id, int(o.outside_rth), 0, 0, "", ""]
        fields += ["", "", "", ""]  # faGroup, faMethod, faPercentage, faProfile (< 177)
        second = [""] * 29  # modelCode … deltaNeutralAuxPrice
        second[23] = o.parent_id
        fields += second
        fields += ["", "", "", _num(o.trailing_percent), "", "", ""]  # … comboLegsDescrip
        fields += [0, 0, 0]  # combo legs, order combo legs, smart combo params
        fields += ["", "", ""]  # scale init level size, subs level size, price increment
        fields += [""]  # hedgeType
        fields += [0, "", "", 0, 0]  # optOutSmartRouting … notHeld, no delta-neutral contract
        fields += [""]  # algoStrategy
        fields += [0, 0, o.status] + [""] * 14 + [0, 0]  # solicited, whatIf, order state
        fields += [0]  # conditions
        fields += [""] * 16  # adjustedOrderType … usePriceMgmtAlgo
        fields += ["", "", 0]  # duration, postToAts, autoCancelParent
        fields += ["", "", "", "", ""]  # minTradeQty … midOffsetAtHalf
        return fields

    def _completed_order_fields(self, o: Order) -> list[Any]:
        # Layout: ib_async 2.1.0 Decoder.completedOrder at server version 176.
        status = "Filled" if o.status == "Filled" else "Cancelled"
        fields: list[Any] = [101, *o.contract.fields(), *self._order_head(o)]
        fields += [o.order_ref, o.perm_id, int(o.outside_rth), 0, 0, "", "", "", ""]
        fields += [""]  # faProfile (< 177)
        fields += [""] * 23  # modelCode … deltaNeutralAuxPrice
        fields += ["", "", "", _num(o.trailing_percent), ""]  # … comboLegsDescrip
        fields += [0, 0, 0, "", "", "", ""]  # legs, order legs, params, scale …, hedgeType
        fields += ["", "", 0, 0]  # clearingAccount, clearingIntent, notHeld, no dnc
        fields += [""]  # algoStrategy
        fields += [0, status, 0, 0]  # solicited, status, randomizeSize, randomizePrice
        fields += [0]  # conditions
        fields += ["", "", "", 0, 0, "", _num(o.filled), 0, 0, "", 0, 0, 0]
        fields += [datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC"), o.why or status]
        fields += ["", "", "", "", ""]  # minTradeQty … midOffsetAtHalf
        return fields
