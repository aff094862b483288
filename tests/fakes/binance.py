"""A Binance spot stub on a loopback port that the real ccxt client talks to.

It speaks the parts of Binance's REST API that tradepipe's ccxt adapter uses, shaped like the
real answers (https://developers.binance.com/docs/binance-spot-api-docs/rest-api), and keeps a
book: balances with free and locked funds, orders by id and client id, trades. Signed endpoints
check X-MBX-APIKEY and the HMAC-SHA256 signature as Binance does (-2014 / -1022 otherwise).
Prices move only when a test calls `set_price`: market orders fill at once, resting orders when
the price crosses them. Faults: `reject_next`, `stall_next` (the order is taken, the answer never
comes), `down` (every request answers 503). Every request is in `requests`, with the
`time.monotonic()` of its arrival (the client's rate limit shows in their spacing).

Runs in its own thread and event loop, so a client on the test's loop cannot deadlock it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.loop import OwnLoop

D = Decimal
ORDER_TYPES = [
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
]
OPEN = ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True)
class Symbol:
    name: str
    base: str
    quote: str
    tick_size: str
    step_size: str
    min_qty: str
    min_notional: str


SYMBOLS = (
    Symbol("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "0.0001", "5"),
    Symbol("ETHUSDT", "ETH", "USDT", "0.01", "0.0001", "0.0001", "5"),
)


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    params: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # arrival at the stub


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal
    stop_price: Decimal
    time_in_force: str | None
    created_ms: int
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote_executed: Decimal = Decimal(0)
    updated_ms: int = 0
    triggered: bool = False
    trades: list[dict[str, Any]] = field(default_factory=list)


class BinanceError(Exception):
    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _text(value: Decimal) -> str:
    return f"{value:.8f}"


def _ms() -> int:
    return int(time.time() * 1000)


class FakeBinance(OwnLoop):
    thread_name = "fake-binance"

    def __init__(
        self,
        api_key: str = "stub-key",
        secret: str = "stub-secret",
        balances: dict[str, str] | None = None,
    ) -> None:
        self.api_key, self.secret = api_key, secret
        self.symbols = {s.name: s for s in SYMBOLS}
        self.prices: dict[str, Decimal] = {"BTCUSDT": D(50000), "ETHUSDT": D(3000)}
        self.free: dict[str, Decimal] = {
            k: D(v) for k, v in (balances or {"USDT": "100000"}).items()
        }
        self.locked: dict[str, Decimal] = {}
        # Each trade's commission: this share of its cost, in the quote asset (0.001: 0.1 %).
        self.commission_rate = D(0)
        self.orders: dict[int, Order] = {}
        self.requests: list[Logged] = []
        self.down = False
        self._rejects: list[tuple[int, str]] = []
        self._stalls = 0
        self._ids = itertools.count(1001)
        self._trade_ids = itertools.count(7001)
        self._lock = threading.RLock()
        self._release: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        super().__init__()

    # -- test controls -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_price(self, symbol: str, price: float | str | Decimal) -> None:
        """Move the market: resting orders the new price crosses fill at it."""
        with self._lock:
            self.prices[symbol] = D(str(price))
            for order in list(self.orders.values()):
                if order.symbol == symbol and order.status in OPEN:
                    self._work(order)

    def reject_next(
        self, message: str = "Account has insufficient balance for requested action.", code=-2010
    ) -> None:
        """The next new order is refused with Binance's own code and words."""
        with self._lock:
            self._rejects.append((code, message))

    def stall_next(self) -> None:
        """The next new order is taken, then its answer never comes (the client times out)."""
        with self._lock:
            self._stalls += 1

    def balance(self, asset: str) -> Decimal:
        with self._lock:
            return self.free.get(asset, D(0)) + self.locked.get(asset, D(0))

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        with self._lock:
            return [
                o for o in self.orders.values() if o.status in OPEN and symbol in (None, o.symbol)
            ]

    def order(self, client_order_id: str) -> Order | None:
        with self._lock:
            return next(
                (o for o in self.orders.values() if o.client_order_id == client_order_id), None
            )

    def sent(self, method: str = "POST", path: str = "/api/v3/order") -> list[Logged]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    # -- life cycle ----------------------------------------------------------------------------

    async def _start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        assert self._release is not None and self._runner is not None
        self._release.set()
        await self._runner.cleanup()

    # -- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        raw = body if request.method in ("POST", "PUT") and body else request.query_string
        params = dict(parse_qsl(raw, keep_blank_values=True))
        path = "/" + request.match_info["path"]
        signature = params.pop("signature", None)
        with self._lock:
            self.requests.append(Logged(request.method, path, dict(params)))
        if self.down:
            return web.Response(status=503, text="Service Unavailable")
        try:
            if path.startswith("/api/v3/") and path[8:] in PRIVATE:
                self._authenticate(request, raw, signature)
            route = ROUTES.get((request.method, path))
            if route is None:
                raise BinanceError(-1000, f"stub: no route {request.method} {path}", 404)
            stall = False
            with self._lock:
                if (request.method, path) == ("POST", "/api/v3/order"):
                    if self._rejects:
                        code, message = self._rejects.pop(0)
                        raise BinanceError(code, message)
                    stall, self._stalls = self._stalls > 0, max(self._stalls - 1, 0)
                answer = route(self, params)
            if stall:
                assert self._release is not None
                await self._release.wait()
                return web.Response(status=503, text="stub stopped")
            return web.json_response(answer)
        except BinanceError as e:
            return web.json_response({"code": e.code, "msg": e.message}, status=e.status)

    def _authenticate(self, request: web.Request, raw: str, signature: str | None) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        signed = raw.split("&signature=")[0]
        expected = hmac.new(self.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if signature is None or not hmac.compare_digest(signature, expected):
            raise BinanceError(-1022, "Signature for this request is not valid.", 401)

    # -- public endpoints ----------------------------------------------------------------------

    def _time(self, params: dict[str, str]) -> Any:
        return {"serverTime": _ms()}

    def _exchange_info(self, params: dict[str, str]) -> Any:
        return {
            "timezone": "UTC",
            "serverTime": _ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [_symbol_info(s) for s in self.symbols.values()],
        }

    def _symbol(self, params: dict[str, str]) -> Symbol:
        found = self.symbols.get(params.get("symbol", ""))
        if found is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return found

    def _ticker_24hr(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        price = self.prices[symbol.name]
        tick = D(symbol.tick_size)
        now = _ms()
        return {
            "symbol": symbol.name,
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": _text(price),
            "prevClosePrice": _text(price),
            "lastPrice": _text(price),
            "lastQty": "0.00100000",
            "bidPrice": _text(price - tick),
            "bidQty": "1.00000000",
            "askPrice": _text(price + tick),
            "askQty": "1.00000000",
            "openPrice": _text(price),
            "highPrice": _text(price),
            "lowPrice": _text(price),
            "volume": "100.00000000",
            "quoteVolume": _text(price * 100),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 100,
            "count": 100,
        }

    def _ticker_price(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        return {"symbol": symbol.name, "price": _text(self.prices[symbol.name])}

    def _book_ticker(self, params: dict[str, str]) -> Any:
        answer = self._ticker_24hr(params)
        return {k: answer[k] for k in ("symbol", "bidPrice", "bidQty", "askPrice", "askQty")}

    # -- account -------------------------------------------------------------------------------

    def _account(self, params: dict[str, str]) -> Any:
        assets = sorted(set(self.free) | set(self.locked))
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": _ms(),
            "accountType": "SPOT",
            "balances": [
                {
                    "asset": a,
                    "free": _text(self.free.get(a, D(0))),
                    "locked": _text(self.locked.get(a, D(0))),
                }
                for a in assets
            ],
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    # -- orders --------------------------------------------------------------------------------

    def _new_order(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        client_id = params.get("newClientOrderId") or f"stub{next(self._ids)}"
        if any(o.client_order_id == client_id for o in self.open_orders()):
            raise BinanceError(-2010, "Duplicate order sent.")
        kind = params.get("type", "")
        if kind not in ORDER_TYPES:
            raise BinanceError(-1116, "Invalid orderType.")
        side = params.get("side", "")
        quantity = D(params.get("quantity", "0"))
        price = D(params.get("price", "0"))
        stop = D(params.get("stopPrice", "0"))
        self._check_filters(symbol, quantity, price or stop or self.prices[symbol.name])
        if kind in ("STOP_LOSS", "STOP_LOSS_LIMIT") and self._triggered(side, stop, symbol.name):
            raise BinanceError(-2010, "Stop price would trigger immediately.")
        now = _ms()
        order = Order(
            next(self._ids),
            client_id,
            symbol.name,
            side,
            kind,
            quantity,
            price,
            stop,
            params.get("timeInForce"),
            now,
            updated_ms=now,
        )
        self._lock_funds(order)
        self.orders[order.order_id] = order
        self._work(order)
        answer = self._order_json(order) | {"transactTime": now, "fills": []}
        for key in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking"):
            answer.pop(key, None)
        if order.type.startswith(("STOP", "TAKE")):
            answer["stopPrice"] = _text(stop)
        answer["fills"] = [
            {
                "price": t["price"],
                "qty": t["qty"],
                "commission": t["commission"],
                "commissionAsset": t["commissionAsset"],
                "tradeId": t["id"],
            }
            for t in order.trades
        ]
        return answer

    def _check_filters(self, symbol: Symbol, quantity: Decimal, price: Decimal) -> None:
        step, tick = D(symbol.step_size), D(symbol.tick_size)
        if quantity < D(symbol.min_qty) or quantity % step:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")
        if price % tick:
            raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if quantity * price < D(symbol.min_notional):
            raise BinanceError(-1013, "Filter failure: NOTIONAL")

    def _lock_funds(self, order: Order) -> None:
        """What an open order reserves, as Binance does: the base a sell would deliver, the quote
        a buy would pay. Not enough free: -2010, the order is not created."""
        symbol = self.symbols[order.symbol]
        if order.side == "SELL":
            asset, amount = symbol.base, order.quantity
        else:
            price = order.price or order.stop_price or self.prices[order.symbol]
            asset, amount = symbol.quote, order.quantity * price
        if self.free.get(asset, D(0)) < amount:
            raise BinanceError(-2010, "Account has insufficient balance for requested action.")
        self.free[asset] = self.free.get(asset, D(0)) - amount
        self.locked[asset] = self.locked.get(asset, D(0)) + amount

    def _unlock(self, order: Order) -> None:
        symbol = self.symbols[order.symbol]
        remaining = order.quantity - order.executed
        if order.side == "SELL":
            asset, amount = symbol.base, remaining
        else:
            price = order.price or order.stop_price or self.prices[order.symbol]
            asset, amount = symbol.quote, remaining * price
        self.locked[asset] = self.locked.get(asset, D(0)) - amount
        self.free[asset] = self.free.get(asset, D(0)) + amount

    def _triggered(self, side: str, stop: Decimal, name: str) -> bool:
        price = self.prices[name]
        return price <= stop if side == "SELL" else price >= stop

    def _work(self, order: Order) -> None:
        """The order meets the current price: it triggers, fills, or keeps resting."""
        price = self.prices[order.symbol]
        if order.type in ("STOP_LOSS", "STOP_LOSS_LIMIT") and not order.triggered:
            if not self._triggered(order.side, order.stop_price, order.symbol):
                return
            order.triggered = True
        crosses = price <= order.price if order.side == "BUY" else price >= order.price
        if order.type in ("MARKET", "STOP_LOSS") or crosses:
            self._fill(order, price)
        elif order.time_in_force in ("IOC", "FOK"):
            self._unlock(order)
            order.status = "EXPIRED"

    def _fill(self, order: Order, price: Decimal) -> None:
        symbol = self.symbols[order.symbol]
        self._unlock(order)  # the reserve goes back, then the trade moves the balances
        quantity = order.quantity - order.executed
        cost = quantity * price
        sign = 1 if order.side == "BUY" else -1
        self.free[symbol.base] = self.free.get(symbol.base, D(0)) + sign * quantity
        self.free[symbol.quote] = self.free.get(symbol.quote, D(0)) - sign * cost
        now = _ms()
        order.trades.append(
            {
                "symbol": order.symbol,
                "id": next(self._trade_ids),
                "orderId": order.order_id,
                "orderListId": -1,
                "price": _text(price),
                "qty": _text(quantity),
                "quoteQty": _text(cost),
                "commission": _text(cost * self.commission_rate),
                "commissionAsset": symbol.quote,
                "time": now,
                "isBuyer": order.side == "BUY",
                "isMaker": order.type not in ("MARKET", "STOP_LOSS"),
                "isBestMatch": True,
            }
        )
        order.executed += quantity
        order.quote_executed += cost
        order.status = "FILLED"
        order.updated_ms = now

    def _find(self, params: dict[str, str], code: int, message: str) -> Order:
        symbol = self._symbol(params)
        for order in self.orders.values():
            if order.symbol != symbol.name:
                continue
            if params.get("origClientOrderId") == order.client_order_id or params.get(
                "orderId"
            ) == str(order.order_id):
                return order
        raise BinanceError(code, message)

    def _get_order(self, params: dict[str, str]) -> Any:
        return self._order_json(self._find(params, -2013, "Order does not exist."))

    def _cancel_order(self, params: dict[str, str]) -> Any:
        order = self._find(params, -2011, "Unknown order sent.")
        if order.status not in OPEN:
            raise BinanceError(-2011, "Unknown order sent.")
        self._unlock(order)
        order.status = "CANCELED"
        order.updated_ms = _ms()
        answer = self._order_json(order)
        for key in ("time", "updateTime", "isWorking", "icebergQty", "workingTime"):
            answer.pop(key, None)
        # Binance names the cancel request itself in clientOrderId; ours is origClientOrderId.
        answer["origClientOrderId"] = order.client_order_id
        answer["clientOrderId"] = params.get("newClientOrderId") or f"cancel{next(self._ids)}"
        answer["transactTime"] = order.updated_ms
        return answer

    def _open_orders(self, params: dict[str, str]) -> Any:
        name = self._symbol(params).name if "symbol" in params else None
        return [self._order_json(o) for o in self.open_orders(name)]

    def _my_trades(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        trades = [
            t
            for o in self.orders.values()
            if o.symbol == symbol.name and params.get("orderId") in (None, str(o.order_id))
            for t in o.trades
        ]
        return sorted(trades, key=lambda t: t["id"])

    def _order_json(self, order: Order) -> dict[str, Any]:
        return {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "price": _text(order.price),
            "origQty": _text(order.quantity),
            "executedQty": _text(order.executed),
            "cummulativeQuoteQty": _text(order.quote_executed),
            "status": order.status,
            "timeInForce": order.time_in_force or "GTC",
            "type": order.type,
            "side": order.side,
            "stopPrice": _text(order.stop_price),
            "icebergQty": "0.00000000",
            "time": order.created_ms,
            "updateTime": order.updated_ms,
            "isWorking": order.type not in ("STOP_LOSS", "STOP_LOSS_LIMIT") or order.triggered,
            "workingTime": order.created_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


def _symbol_info(symbol: Symbol) -> dict[str, Any]:
    return {
        "symbol": symbol.name,
        "status": "TRADING",
        "baseAsset": symbol.base,
        "baseAssetPrecision": 8,
        "quoteAsset": symbol.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": symbol.tick_size,
                "maxPrice": "1000000.00000000",
                "tickSize": symbol.tick_size,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": symbol.min_qty,
                "maxQty": "9000.00000000",
                "stepSize": symbol.step_size,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": symbol.min_notional,
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


PRIVATE = {"account", "order", "openOrders", "myTrades"}
ROUTES = {
    ("GET", "/api/v3/time"): FakeBinance._time,
    ("GET", "/api/v3/exchangeInfo"): FakeBinance._exchange_info,
    ("GET", "/api/v3/ticker/24hr"): FakeBinance._ticker_24hr,
    ("GET", "/api/v3/ticker/price"): FakeBinance._ticker_price,
    ("GET", "/api/v3/ticker/bookTicker"): FakeBinance._book_ticker,
    ("GET", "/api/v3/account"): FakeBinance._account,
    ("POST", "/api/v3/order"): FakeBinance._new_order,
    ("GET", "/api/v3/order"): FakeBinance._get_order,
    ("DELETE", "/api/v3/order"): FakeBinance._cancel_order,
    ("GET", "/api/v3/openOrders"): FakeBinance._open_orders,
    ("GET", "/api/v3/myTrades"): FakeBinance._my_trades,
}
