"""A fake Alpaca on a loopback port that the real alpaca-py talks to: the trading REST API
(`/v2/...`), the `trade_updates` websocket (`/stream`) and the latest trade/quote of the data API.

It keeps an account's books (orders by id and client id, positions, cash) and trades against a
price the test sets (`set_price`): market orders fill at once, resting limit / stop / trailing
orders when a new price crosses them, bracket legs are held until their entry fills and cancel
each other. It answers as Alpaca does — string decimals, 422 for a reused client order id or a
sub-penny price, 403 for buying power — and misbehaves on demand: a rejection with a message, a
stalled answer, a 504, a dropped stream during which events are lost.

Options: `list_options(underlying, expirations, strikes)` lists a chain on
`GET /v2/options/contracts` (paged: `max_option_page` contracts a page, then `next_page_token`)
and `GET /v2/options/contracts/{symbol}`; an underlying without a listed chain has every
well-formed OCC contract. Orders for OCC symbols trade whole contracts (100 shares each: cash
and buying power count ×100), simple orders only, day or gtc, regular hours; prices are per
share, at most 2 decimals. Refusals name the rule, in words modelled on Alpaca's, unverified.

Runs in its own thread and event loop; every change happens on that loop, so tests may call
it from any thread. Shapes follow /work/shared/research/brokers-offline.md §1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.loop import OwnLoop

KEY = "PKFAKEKEY0000000000"
SECRET = "fake-secret-0000000000000000000000000000"
WORKING = frozenset({"new", "accepted", "pending_new", "partially_filled", "held"})
UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}
OCC = re.compile(r"^(?P<root>[A-Z]{1,6})(?P<date>\d{6})(?P<right>[CP])(?P<strike>\d{8})$")


def _multiplier(symbol: str) -> Decimal:
    """Shares one unit stands for: an option contract 100, anything else 1."""
    return Decimal(100) if OCC.match(symbol) else Decimal(1)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class AlpacaError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Logged:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when the fake got it


@dataclass
class Order:
    """One order as the fake keeps it; `json()` is Alpaca's Order JSON."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    type: str
    time_in_force: str
    order_class: str = ""
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    extended_hours: bool = False
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    parent: str | None = None  # a bracket leg's entry (alpaca id)
    legs: list[str] = field(default_factory=list)
    hwm: Decimal | None = None
    replaces: str | None = None
    replaced_by: str | None = None
    submitted_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    filled_at: str | None = None
    canceled_at: str | None = None
    triggered: bool = False  # a stop-limit whose stop was reached

    @property
    def asset_class(self) -> str:
        if OCC.match(self.symbol):
            return "us_option"
        return "crypto" if "/" in self.symbol else "us_equity"

    def json(self, legs: list[dict] | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": self.submitted_at,
            "updated_at": self.updated_at,
            "submitted_at": self.submitted_at,
            "filled_at": self.filled_at,
            "expired_at": None,
            "canceled_at": self.canceled_at,
            "failed_at": None,
            "replaced_at": self.updated_at if self.replaced_by else None,
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, self.symbol)),
            "symbol": self.symbol,
            "asset_class": self.asset_class,
            "notional": None,
            "qty": _text(self.qty),
            "filled_qty": _text(self.filled_qty),
            "filled_avg_price": _text(self.filled_avg_price),
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "time_in_force": self.time_in_force,
            "limit_price": _text(self.limit_price),
            "stop_price": _text(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": legs,
            "trail_percent": _text(self.trail_percent),
            "trail_price": _text(self.trail_price),
            "hwm": _text(self.hwm),
            "position_intent": None,
        }


class FakeAlpaca(OwnLoop):
    thread_name = "fake-alpaca"

    def __init__(self, *, cash: Decimal | int = 100_000, key: str = KEY, secret: str = SECRET):
        self.key, self.secret = key, secret
        self.cash = Decimal(cash)
        self.orders: dict[str, Order] = {}
        self.by_client: dict[str, str] = {}
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}
        self.prices: dict[str, Decimal] = {}
        self.quotes: dict[str, tuple[Decimal, Decimal]] = {}
        self.assets: dict[str, dict[str, Any]] = {}
        self.option_contracts: dict[str, dict[str, Any]] = {}  # OCC symbol → contract JSON
        self.option_underlyings: set[str] = set()  # those with a listed chain (no others)
        self.max_option_page = 10_000  # Alpaca's cap on `limit`; a test lowers it to page
        self.requests: list[Logged] = []
        self.events: list[dict] = []  # every trade update sent (or lost while the stream was down)
        self.stream_attempts = 0  # websocket connections asked for, refused ones included
        self._faults: list[tuple[str, Any]] = []
        self._stream_down = False
        self.refuse_stream = False
        self._partials: list[Decimal] = []  # the stream answers "unauthorized" to any key
        self._sockets: dict[web.WebSocketResponse, asyncio.Queue[bytes]] = {}
        self._authorized: set[web.WebSocketResponse] = set()
        self._listeners: set[web.WebSocketResponse] = set()
        self._release = threading.Event()
        self._runner: web.AppRunner | None = None
        super().__init__()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    # -- what a test does to it (any thread) -------------------------------------------------

    def set_price(self, symbol: str, price: float | str | Decimal) -> None:
        """The market moves: resting orders that the new price crosses fill."""
        self._call(self._move, symbol, Decimal(str(price)))

    def refuse_working(self, client_order_id: str) -> None:
        """Alpaca refuses an order it had accepted (as an exchange may, hours later)."""

        def refuse() -> None:
            (order,) = [o for o in self.orders.values() if o.client_order_id == client_order_id]
            self._finish(order, "rejected")

        self._call(refuse)

    def set_quote(self, symbol: str, bid: float | str, ask: float | str) -> None:
        self._call(self.quotes.__setitem__, symbol, (Decimal(str(bid)), Decimal(str(ask))))

    def add_crypto(
        self,
        symbol: str,
        *,
        min_order_size: str = "0.0001",
        min_trade_increment: str = "0.0001",
        price_increment: str = "0.01",
    ) -> None:
        self.assets[symbol.replace("/", "")] = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
            "class": "crypto",
            "exchange": "CRYPTO",
            "symbol": symbol,
            "name": symbol,
            "status": "active",
            "tradable": True,
            "marginable": False,
            "shortable": False,
            "easy_to_borrow": False,
            "fractionable": True,
            "min_order_size": min_order_size,
            "min_trade_increment": min_trade_increment,
            "price_increment": price_increment,
        }

    def list_options(
        self,
        underlying: str,
        expirations: list[str],
        strikes: list[str],
        *,
        size: str = "100",
        inactive: frozenset[str] = frozenset(),
    ) -> list[str]:
        """The underlying's chain: expirations (YYYY-MM-DD) × strikes × call/put; the OCC
        symbols in `inactive` are listed but inactive. Answers the symbols listed."""
        listed = []
        for expiration in expirations:
            for strike in strikes:
                for kind in ("call", "put"):
                    thousandths = int(Decimal(strike) * 1000)
                    symbol = (
                        f"{underlying}{expiration[2:4]}{expiration[5:7]}{expiration[8:10]}"
                        f"{kind[0].upper()}{thousandths:08d}"
                    )
                    self.option_contracts[symbol] = self._contract_json(
                        symbol, underlying, expiration, kind, strike, size, symbol not in inactive
                    )
                    listed.append(symbol)
        self.option_underlyings.add(underlying)
        return listed

    def reject_next(self, message: str, *, status: int = 422, code: int = 42210000) -> None:
        """The next new order is refused with this message."""
        self._faults.append(("reject", (status, code, message)))

    def stall_next(self) -> None:
        """The next new order is taken, and its answer never comes (until the fake stops)."""
        self._faults.append(("stall", None))

    def fail_next(self, status: int = 504, method: str = "POST", path: str = "/v2/orders") -> None:
        """The next request to this route answers this status, and does nothing."""
        self._faults.append(("fail", (status, method, path)))

    def partial_next(self, quantity: float | str | Decimal) -> None:
        """The next execution fills only this much of its order; the rest keeps working."""
        self._call(self._partials.append, Decimal(str(quantity)))

    def drop_stream(self) -> None:
        """Close every stream connection and refuse new ones (HTTP 503), until
        `restore_stream`: events meanwhile are lost. Before a client connects: it never can."""
        self._call(self._drop)

    def restore_stream(self) -> None:
        self._call(setattr, self, "_stream_down", False)

    def order(self, client_order_id: str) -> Order | None:
        found = self.by_client.get(client_order_id)
        return self.orders[found] if found else None

    def orders_of(self, symbol: str) -> list[Order]:
        return [o for o in self.orders.values() if o.symbol == symbol]

    def position(self, symbol: str) -> Decimal:
        return self.positions.get(symbol, (Decimal(0), Decimal(0)))[0]

    def sent(self, method: str = "POST", path: str = "/v2/orders") -> list[Logged]:
        return [r for r in list(self.requests) if r.method == method and r.path == path]

    def config(self, directory: Any, *, port: int | None = None, subscription: str = "") -> Any:
        """A tradepipe config whose one account, `alpaca`, trades at this fake (credentials
        come from TRADEPIPE_ALPACA_KEY / _SECRET: see `env`); the port is a free one unless
        given, so that no test reaches another's daemon."""
        from tests.helpers import TOKEN, free_port

        port = free_port() if port is None else port

        path = directory / "tradepipe.toml"
        path.write_text(
            f"""
[server]
host = "127.0.0.1"
port = {port}

[journal]
path = "journal.db"

[accounts.alpaca]
broker = "alpaca"
base_url = "{self.url}"
stream_url = "{self.stream_url}"
data_url = "{self.url}"
timeout = 2

[strategies.trend]
token = "{TOKEN}"

[subscriptions.trend-alpaca]
strategy = "trend"
account = "alpaca"
{subscription}
"""
        )
        return path

    @property
    def env(self) -> dict[str, str]:
        return {"TRADEPIPE_ALPACA_KEY": self.key, "TRADEPIPE_ALPACA_SECRET": self.secret}

    @property
    def listening(self) -> int:
        return len(self._listeners)

    # -- life cycle ----------------------------------------------------------------------------

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/stream", self._stream)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        assert self._runner is not None
        await self._runner.cleanup()

    def stop(self) -> None:
        self._release.set()  # a stalled answer ends, or the server could not close
        super().stop()

    # -- REST ----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = None
        if request.can_read_body:
            text = await request.text()
            body = json.loads(text) if text else None
        self.requests.append(Logged(request.method, request.path, dict(request.query), body))
        if (
            request.headers.get("APCA-API-KEY-ID") != self.key
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret
        ):
            return web.json_response(UNAUTHORIZED, status=401)
        if self._faults and self._faults[0][0] == "fail":
            status, method, path = self._faults[0][1]
            if (request.method, request.path) == (method, path):
                self._faults.pop(0)
                return web.json_response(
                    {"code": status * 100000, "message": "fault"}, status=status
                )
        try:
            answer, status = self._route(request.method, request.path, dict(request.query), body)
        except AlpacaError as e:
            return web.json_response({"code": e.code, "message": e.message}, status=e.status)
        if status == "stall":  # taken, and the answer is lost (the client has given up)
            await asyncio.get_running_loop().run_in_executor(None, self._release.wait, 30)
            status = 200
        if answer is None:
            return web.Response(status=status)
        return web.json_response(answer, status=status)

    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[Any, Any]:
        parts = path.strip("/").split("/")
        if parts[0] == "v2" and len(parts) >= 3 and parts[1] == "stocks":
            return self._latest(parts[2], query), 200
        if parts[0] == "v1beta3" and parts[1] == "crypto":
            return self._latest(parts[4], query), 200
        route = (method, "/".join(parts[1:2]))
        rest = parts[2:]
        if route == ("GET", "account"):
            return self._account(), 200
        if route == ("POST", "orders"):
            return self._submit(body)
        if route == ("GET", "orders:by_client_order_id"):
            return self._nested(self._known(self.by_client.get(query.get("client_order_id")))), 200
        if route == ("GET", "orders") and not rest:
            return self._list(query), 200
        if route == ("GET", "orders"):
            return self._nested(self._known(rest[0])), 200
        if route == ("PATCH", "orders"):
            return self._replace(rest[0], body or {}), 200
        if route == ("DELETE", "orders"):
            self._cancel(self._known(rest[0]))
            return None, 204
        if route == ("GET", "positions") and not rest:
            return [self._position_json(s) for s in sorted(self.positions)], 200
        if route == ("GET", "positions"):
            return self._position_json(self._position_symbol(rest[0])), 200
        if route == ("DELETE", "positions"):
            return self._close(self._position_symbol(rest[0]))
        if route == ("GET", "assets"):
            return self._asset(rest[0]), 200
        if route == ("GET", "options") and rest == ["contracts"]:
            return self._option_contracts(query), 200
        if route == ("GET", "options") and len(rest) == 2 and rest[0] == "contracts":
            return self._option_contract(rest[1]), 200
        raise AlpacaError(404, 40410000, f"fake Alpaca has no route {method} {path}")

    def _known(self, order_id: str | None) -> Order:
        if order_id is None or order_id not in self.orders:
            raise AlpacaError(404, 40410000, "order not found")
        return self.orders[order_id]

    def _nested(self, order: Order) -> dict:
        return order.json([self.orders[leg].json() for leg in order.legs] or None)

    def _list(self, query: dict) -> list[dict]:
        status = query.get("status", "open")
        nested = query.get("nested") in ("true", "True", "1")
        after = query.get("after")
        symbols = set(query["symbols"].split(",")) if query.get("symbols") else None
        found = []
        for order in self.orders.values():
            if nested and order.parent:
                continue
            is_open = order.status in WORKING or (
                nested and any(self.orders[leg].status in WORKING for leg in order.legs)
            )
            if (status == "open" and not is_open) or (status == "closed" and is_open):
                continue
            if symbols and order.symbol not in symbols:
                continue
            if after and _moment(order.submitted_at) <= _moment(after):
                continue  # Alpaca: "submitted after this timestamp"
            found.append(order)
        if query.get("direction", "desc") == "desc":
            found.reverse()
        found = found[: int(query.get("limit", 50))]
        return [self._nested(o) if nested else o.json() for o in found]

    def _account(self) -> dict:
        equity = self.cash + sum(
            qty * self.prices.get(symbol, avg) * _multiplier(symbol)
            for symbol, (qty, avg) in self.positions.items()
        )
        return {
            "id": "c5a4c2b4-0000-4000-8000-000000000001",
            "account_number": "PA0000FAKE",
            "status": "ACTIVE",
            "currency": "USD",
            "cash": _text(self.cash),
            "equity": _text(equity),
            "portfolio_value": _text(equity),
            "buying_power": _text(max(self.cash, Decimal(0))),
            "multiplier": "1",
            "trading_blocked": False,
            "shorting_enabled": True,
        }

    def _asset(self, symbol: str) -> dict:
        if symbol.replace("/", "") in self.assets:
            return self.assets[symbol.replace("/", "")]
        if "/" in symbol or (symbol.endswith("USD") and len(symbol) > 5):
            raise AlpacaError(404, 40410000, "asset not found")
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
            "class": "us_equity",
            "exchange": "NASDAQ",
            "symbol": symbol,
            "name": symbol,
            "status": "active",
            "tradable": True,
            "marginable": True,
            "shortable": True,
            "easy_to_borrow": True,
            "fractionable": True,
        }

    # -- options -------------------------------------------------------------------------------

    @staticmethod
    def _contract_json(
        symbol: str, underlying: str, expiration: str, kind: str, strike: str, size: str, active
    ) -> dict[str, Any]:
        """An option contract as `/v2/options/contracts` answers it."""
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
            "symbol": symbol,
            "name": f"{underlying} {expiration} {kind.title()} {strike}",
            "status": "active" if active else "inactive",
            "tradable": bool(active),
            "expiration_date": expiration,
            "root_symbol": underlying,
            "underlying_symbol": underlying,
            "underlying_asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, underlying)),
            "type": kind,
            "style": "american",
            "strike_price": _text(Decimal(strike)),
            "size": size,
            "open_interest": "100",
            "open_interest_date": expiration,
            "close_price": "1.5",
            "close_price_date": expiration,
        }

    def _contract(self, symbol: str) -> dict[str, Any] | None:
        """A listed contract; for an underlying without a listed chain, any OCC symbol."""
        if symbol in self.option_contracts:
            return self.option_contracts[symbol]
        found = OCC.match(symbol)
        if found is None or found["root"] in self.option_underlyings:
            return None
        day = found["date"]
        return self._contract_json(
            symbol,
            found["root"],
            f"20{day[:2]}-{day[2:4]}-{day[4:]}",
            "call" if found["right"] == "C" else "put",
            _text(Decimal(found["strike"]) / 1000) or "0",
            "100",
            True,
        )

    def _option_contracts(self, query: dict) -> dict:
        underlyings = set(query.get("underlying_symbols", "").split(",")) - {""}
        status = query.get("status")
        after, before = query.get("expiration_date_gte"), query.get("expiration_date_lte")
        found = [
            c
            for _, c in sorted(self.option_contracts.items())
            if (not underlyings or c["underlying_symbol"] in underlyings)
            and (status is None or c["status"] == status)
            and (after is None or c["expiration_date"] >= after)
            and (before is None or c["expiration_date"] <= before)
            and query.get("type") in (None, c["type"])
        ]
        limit = min(int(query.get("limit", 100)), self.max_option_page)
        start = int(base64.b64decode(query["page_token"])) if query.get("page_token") else 0
        page = found[start : start + limit]
        more = start + limit < len(found)
        token = base64.b64encode(str(start + limit).encode()).decode() if more else None
        return {"option_contracts": page, "next_page_token": token}

    def _option_contract(self, symbol: str) -> dict:
        contract = self._contract(symbol)
        if contract is None:
            raise AlpacaError(404, 40410000, f"option contract {symbol} not found")
        return contract

    def _check_option(self, body: dict, qty: Decimal) -> None:
        """What Alpaca refuses of an option order (words modelled on its, unverified)."""
        symbol = body["symbol"]
        contract = self._contract(symbol)
        if contract is None or not contract["tradable"]:
            raise AlpacaError(422, 40010001, f'asset "{symbol}" is not tradable')
        if qty != qty.to_integral_value():
            raise AlpacaError(422, 40010001, "qty must be integer for options")
        if (body.get("order_class") or "simple") not in ("simple", "mleg"):
            raise AlpacaError(
                422, 40010001, f"order_class {body['order_class']} is not supported for options"
            )
        if body["time_in_force"] not in ("day", "gtc"):
            raise AlpacaError(
                422, 40010001, f"time_in_force {body['time_in_force']} is not supported for options"
            )
        if body.get("extended_hours"):
            raise AlpacaError(422, 40010001, "extended hours are not supported for options")
        if body["type"] not in ("market", "limit", "stop", "stop_limit"):
            raise AlpacaError(
                422, 40010001, f"order type {body['type']} is not supported for options"
            )

    def _latest(self, kind: str, query: dict) -> dict:
        symbols = query.get("symbols", "").split(",")
        if kind == "quotes":
            quotes = {
                s: {"t": _now(), "bp": float(self.quotes[s][0]), "ap": float(self.quotes[s][1])}
                for s in symbols
                if s in self.quotes
            }
            return {"quotes": quotes}
        trades = {
            s: {"t": _now(), "p": float(self.prices[s]), "s": 100, "x": "V", "i": 1}
            for s in symbols
            if s in self.prices
        }
        return {"trades": trades}

    # -- orders --------------------------------------------------------------------------------

    def _submit(self, body: dict) -> tuple[Any, Any]:
        client_id = body.get("client_order_id") or str(uuid.uuid4())
        if client_id in self.by_client:
            raise AlpacaError(422, 40010001, "client_order_id must be unique")
        stall = False
        if self._faults and self._faults[0][0] in ("reject", "stall"):
            kind, detail = self._faults.pop(0)
            if kind == "reject":
                raise AlpacaError(*detail)
            stall = True
        symbol, side, qty = body["symbol"], body["side"], _decimal(body.get("qty"))
        if qty is None or qty <= 0:
            raise AlpacaError(422, 40010001, "qty must be > 0")
        if OCC.match(symbol):
            self._check_option(body, qty)
        order = Order(
            id=str(uuid.uuid4()),
            client_order_id=client_id,
            symbol=symbol,
            side=side,
            qty=qty,
            type=body["type"],
            time_in_force=body["time_in_force"],
            order_class=body.get("order_class") or "",
            limit_price=_decimal(body.get("limit_price")),
            stop_price=_decimal(body.get("stop_price")),
            trail_price=_decimal(body.get("trail_price")),
            trail_percent=_decimal(body.get("trail_percent")),
            extended_hours=bool(body.get("extended_hours")),
        )
        legs = self._legs(order, body)
        for o in (order, *legs):
            self._check_prices(o)
        self._check_buying_power(order)
        self._add(order)
        for leg in legs:
            self._add(leg)
            order.legs.append(leg.id)
        self._emit("new", order)
        self._place(order)
        return self._nested(order), "stall" if stall else 200

    def _legs(self, entry: Order, body: dict) -> list[Order]:
        legs = []
        other = "sell" if entry.side == "buy" else "buy"
        take_profit, stop_loss = body.get("take_profit"), body.get("stop_loss")
        if entry.order_class in ("bracket", "oto") and take_profit:
            legs.append(self._leg(entry, other, "limit", _decimal(take_profit["limit_price"])))
        if entry.order_class in ("bracket", "oto") and stop_loss:
            limit = _decimal(stop_loss.get("limit_price"))
            leg = self._leg(entry, other, "stop_limit" if limit else "stop", limit)
            leg.stop_price = _decimal(stop_loss["stop_price"])
            legs.append(leg)
        return legs

    def _leg(self, entry: Order, side: str, kind: str, limit: Decimal | None) -> Order:
        return Order(
            id=str(uuid.uuid4()),
            client_order_id=str(uuid.uuid4()),  # Alpaca names the legs itself
            symbol=entry.symbol,
            side=side,
            qty=entry.qty,
            type=kind,
            time_in_force=entry.time_in_force,
            order_class=entry.order_class,
            limit_price=limit,
            status="held",
            parent=entry.id,
        )

    def _add(self, order: Order) -> None:
        self.orders[order.id] = order
        self.by_client[order.client_order_id] = order.id

    def _check_prices(self, order: Order) -> None:
        """Alpaca's sub-penny rule for stocks (≥ $1: 2 decimals, < $1: 4 decimals); options
        2 decimals."""
        if order.asset_class == "us_option":
            for name in ("limit_price", "stop_price"):
                price = getattr(order, name)
                if price is not None and price != round(price, 2):
                    raise AlpacaError(
                        422,
                        42210000,
                        f"{name.split('_')[0]} price must be limited to 2 decimal places",
                    )
            return
        if order.asset_class != "us_equity":
            return
        for name in ("limit_price", "stop_price", "trail_price"):
            price = getattr(order, name)
            if price is None:
                continue
            places = 2 if price >= 1 else 4
            if price != round(price, places):
                raise AlpacaError(
                    422,
                    42210000,
                    f"invalid {name} {price}. sub-penny increment does not fulfill minimum"
                    " pricing criteria",
                )

    def _check_buying_power(self, order: Order) -> None:
        if order.side != "buy":
            return
        price = order.limit_price or self.prices.get(order.symbol) or order.stop_price
        if price is not None and order.qty * price * _multiplier(order.symbol) > self.cash:
            raise AlpacaError(403, 40310000, "insufficient buying power")

    def _place(self, order: Order) -> None:
        """A live order meets the price now: it fills, rests, or (ioc / fok) is canceled."""
        price = self.prices.get(order.symbol)
        if order.type == "market" and price is None:
            self._finish(order, "rejected")
            return
        if order.type == "trailing_stop" and price is not None:
            order.hwm = price
        fill = self._crossing(order, price, fresh=True)
        if fill is not None:
            self._fill(order, fill)
        elif order.time_in_force in ("ioc", "fok"):
            self._finish(order, "canceled")

    def _crossing(self, order: Order, price: Decimal | None, *, fresh: bool) -> Decimal | None:
        if price is None or order.status not in WORKING or order.status == "held":
            return None
        buy = order.side == "buy"
        if order.type == "market":
            return price
        if order.type == "limit":
            assert order.limit_price is not None
            if (price <= order.limit_price) if buy else (price >= order.limit_price):
                return min(price, order.limit_price) if fresh else order.limit_price
            return None
        if order.type in ("stop", "stop_limit"):
            assert order.stop_price is not None
            if order.triggered or (
                (price >= order.stop_price) if buy else (price <= order.stop_price)
            ):
                if order.type == "stop":
                    return price
                order.triggered = True
                assert order.limit_price is not None
                crosses = (price <= order.limit_price) if buy else (price >= order.limit_price)
                return price if crosses else None
            return None
        if order.type == "trailing_stop":
            hwm = order.hwm if order.hwm is not None else price
            hwm = min(hwm, price) if buy else max(hwm, price)
            order.hwm = hwm
            sign = 1 if buy else -1
            if order.trail_price is not None:
                stop = hwm + sign * order.trail_price
            else:
                assert order.trail_percent is not None
                stop = hwm * (1 + sign * order.trail_percent / 100)
            order.stop_price = stop
            return price if ((price >= stop) if buy else (price <= stop)) else None
        return None

    def _move(self, symbol: str, price: Decimal) -> None:
        self.prices[symbol] = price
        for order in list(self.orders.values()):
            if order.symbol != symbol:
                continue
            fill = self._crossing(order, price, fresh=False)
            if fill is not None:
                self._fill(order, fill)

    def _fill(self, order: Order, price: Decimal) -> None:
        quantity = order.qty - order.filled_qty
        if self._partials:  # this execution takes only part of what is left
            quantity = min(quantity, self._partials.pop(0))
        before = order.filled_qty
        order.filled_qty += quantity
        order.filled_avg_price = (before * (order.filled_avg_price or 0) + quantity * price) / (
            order.filled_qty
        )
        partial = order.filled_qty < order.qty
        order.status = "partially_filled" if partial else "filled"
        order.filled_at = order.updated_at = _now()
        signed = quantity if order.side == "buy" else -quantity
        self.cash -= signed * price * _multiplier(order.symbol)
        held, average = self.positions.get(order.symbol, (Decimal(0), Decimal(0)))
        new = held + signed
        if new == 0:
            self.positions.pop(order.symbol, None)
        else:
            opening = held == 0 or (held > 0) == (signed > 0)
            if opening:
                average = (held * average + signed * price) / new
            elif (held > 0) != (new > 0):
                average = price  # reversed through zero
            self.positions[order.symbol] = (new, average)
        self._emit(
            "partial_fill" if partial else "fill",
            order,
            execution_id=str(uuid.uuid4()),
            price=_text(price),
            qty=_text(quantity),
            position_qty=_text(new),
        )
        if partial:
            return  # (legs wait for the whole entry, as the fake keeps it simple)
        for leg_id in order.legs:  # the entry filled: its legs go live
            leg = self.orders[leg_id]
            if leg.status == "held":
                leg.status = "new"
                leg.updated_at = _now()
                self._emit("new", leg)
                if leg.type == "trailing_stop":
                    leg.hwm = price
        if order.parent is not None:  # one-cancels-other
            for leg_id in self.orders[order.parent].legs:
                sibling = self.orders[leg_id]
                if sibling.id != order.id and sibling.status in WORKING:
                    self._finish(sibling, "canceled")
        for leg_id in order.legs:  # a leg that the entry's fill made live may cross at once
            leg = self.orders[leg_id]
            fill = self._crossing(leg, self.prices.get(leg.symbol), fresh=True)
            if fill is not None:
                self._fill(leg, fill)

    def _finish(self, order: Order, status: str) -> None:
        order.status = status
        order.updated_at = _now()
        if status == "canceled":
            order.canceled_at = order.updated_at
        self._emit(status, order)
        for leg_id in order.legs:  # an entry that ends unfilled takes its held legs along
            leg = self.orders[leg_id]
            if leg.status == "held":
                self._finish(leg, "canceled")

    def _cancel(self, order: Order) -> None:
        if order.status not in WORKING:
            raise AlpacaError(422, 42210000, f"order is not cancelable (status {order.status})")
        self._finish(order, "canceled")

    def _replace(self, order_id: str, body: dict) -> dict:
        old = self._known(order_id)
        if old.status not in WORKING:
            raise AlpacaError(422, 42210000, f"order is not replaceable (status {old.status})")
        client_id = body.get("client_order_id") or str(uuid.uuid4())
        if client_id in self.by_client:
            raise AlpacaError(422, 40010001, "client_order_id must be unique")
        new = Order(
            id=str(uuid.uuid4()),
            client_order_id=client_id,
            symbol=old.symbol,
            side=old.side,
            qty=_decimal(body.get("qty")) or old.qty,
            type=old.type,
            time_in_force=body.get("time_in_force") or old.time_in_force,
            order_class=old.order_class,
            limit_price=_decimal(body.get("limit_price")) or old.limit_price,
            stop_price=_decimal(body.get("stop_price")) or old.stop_price,
            trail_price=old.trail_price,
            trail_percent=old.trail_percent,
            status="held" if old.status == "held" else "new",
            parent=old.parent,
            replaces=old.id,
        )
        if body.get("trail") is not None:
            if old.trail_price is not None:
                new.trail_price = _decimal(body["trail"])
            else:
                new.trail_percent = _decimal(body["trail"])
        self._check_prices(new)
        self._add(new)
        old.status, old.replaced_by, old.updated_at = "replaced", new.id, _now()
        if old.parent is not None:
            legs = self.orders[old.parent].legs
            legs[legs.index(old.id)] = new.id
        self._emit("replaced", old)
        self._emit("new", new)
        if new.status != "held":
            self._place(new)
        return self._nested(new)

    # -- positions -----------------------------------------------------------------------------

    def _position_symbol(self, symbol: str) -> str:
        for held in self.positions:
            if held.replace("/", "") == symbol.replace("/", ""):
                return held
        return symbol

    def _position_json(self, symbol: str) -> dict:
        if symbol not in self.positions:
            raise AlpacaError(404, 40410000, "position does not exist")
        qty, average = self.positions[symbol]
        price = self.prices.get(symbol, average)
        crypto = "/" in symbol
        option = OCC.match(symbol) is not None
        m = _multiplier(symbol)  # an option's prices are per share, its values per contract
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
            "symbol": symbol.replace("/", ""),  # Alpaca: BTCUSD in positions
            "exchange": "CRYPTO" if crypto else ("" if option else "NASDAQ"),
            "asset_class": "us_option" if option else ("crypto" if crypto else "us_equity"),
            "avg_entry_price": _text(average),
            "qty": _text(qty),
            "qty_available": _text(qty),
            "side": "long" if qty > 0 else "short",
            "cost_basis": _text(qty * average * m),
            "market_value": _text(qty * price * m),
            "current_price": _text(price),
            "unrealized_pl": _text(qty * (price - average) * m),
        }

    def _close(self, symbol: str) -> tuple[dict, int]:
        self._position_json(symbol)  # 404 when flat
        qty, _ = self.positions[symbol]
        answer, _ = self._submit(
            {
                "symbol": symbol,
                "qty": str(abs(qty)),
                "side": "sell" if qty > 0 else "buy",
                "type": "market",
                "time_in_force": "day",
            }
        )
        return answer, 200

    # -- the stream ----------------------------------------------------------------------------

    def _drop(self) -> None:
        self._stream_down = True
        self._listeners.clear()
        for socket in list(self._sockets):
            asyncio.get_running_loop().create_task(socket.close())

    def _emit(self, event: str, order: Order, **extra: Any) -> None:
        legs = [self.orders[leg].json() for leg in order.legs] or None
        data = {"event": event, "timestamp": _now(), "order": order.json(legs), **extra}
        message = json.dumps({"stream": "trade_updates", "data": data}).encode()
        self.events.append(data | {"delivered": bool(self._listeners)})
        for socket in list(self._listeners):
            self._sockets[socket].put_nowait(message)  # one writer per connection keeps order

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        self.stream_attempts += 1
        if self._stream_down:
            return web.Response(status=503, text="stream unavailable (fake)")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._sockets[socket] = queue
        writer = asyncio.get_running_loop().create_task(_write(socket, queue))
        try:
            async for message in socket:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                self._stream_message(socket, json.loads(message.data))
        finally:
            self._sockets.pop(socket, None)
            self._authorized.discard(socket)
            self._listeners.discard(socket)
            writer.cancel()
        return socket

    def _stream_message(self, socket: web.WebSocketResponse, payload: dict) -> None:
        action = payload.get("action")
        if action in ("auth", "authenticate"):
            data = payload.get("data") or {}
            key = payload.get("key") or data.get("key_id")
            secret = payload.get("secret") or data.get("secret_key")
            ok = (key, secret) == (self.key, self.secret) and not self.refuse_stream
            reply = {"status": "authorized" if ok else "unauthorized", "action": "authenticate"}
            if not ok:
                reply["message"] = "access key verification failed"
            self._sockets[socket].put_nowait(
                json.dumps({"stream": "authorization", "data": reply}).encode()
            )
            if ok:
                self._authorized.add(socket)
            else:
                self._sockets[socket].put_nowait(b"")  # the writer closes the connection
        elif action == "listen" and socket in self._authorized:
            streams = (payload.get("data") or {}).get("streams") or []
            if "trade_updates" in streams:
                self._listeners.add(socket)
            else:
                self._listeners.discard(socket)
            self._sockets[socket].put_nowait(
                json.dumps({"stream": "listening", "data": {"streams": streams}}).encode()
            )


async def _write(socket: web.WebSocketResponse, queue: asyncio.Queue[bytes]) -> None:
    """Frames of one connection, in order; an empty one closes it."""
    while True:
        message = await queue.get()
        try:
            if not message:
                await socket.close()
            elif not socket.closed:
                await socket.send_bytes(message)
        except ConnectionError:
            pass
        finally:
            queue.task_done()


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
