"""The broker protocol every adapter speaks, and the capabilities it declares as data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tradepipe.core.continuous import ListedFuture
from tradepipe.core.instruments import InstrumentKind
from tradepipe.core.model import OrderRequest, OrderState, OrderType, Position, TimeInForce
from tradepipe.core.options import OptionContract
from tradepipe.core.tickers import default_canonical_ticker


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a broker can do; planning reads this instead of asking which broker it is."""

    order_types: frozenset[OrderType] = frozenset(OrderType)
    time_in_force: frozenset[TimeInForce] = frozenset(TimeInForce)
    brackets: bool = False
    # Can a take-profit and a stop-loss rest at once for one position? Not on spot exchanges,
    # where each open sell reserves the balance it sells: the second exit would be refused.
    concurrent_exits: bool = True
    fractional: bool = False
    short_selling: bool = True
    quotes: bool = False
    # The paper broker has no market data: the prices that signals carry move its marks.
    marks_from_signals: bool = False
    lot_size: Decimal = Decimal(1)
    # Option contract selection (SPEC §15): `option_chain` answers the listed contracts. Off: a
    # signal with option fields is refused, never traded as the underlying.
    options: bool = False
    # Continuous futures tickers (`ES1!`, SPEC §15): `futures_contracts` answers a root's listed
    # contracts, mapped to the front one by `core.continuous.front_contract`. Off: refused.
    continuous_futures: bool = False
    # A fill's fee may be reported after the fill (IB's commission report follows its
    # execution): the recorder keeps the fills journaled without one and adds it when it comes.
    fees_follow_fills: bool = False


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    """What one instrument allows at this broker (from its market data: ccxt `load_markets`,
    Alpaca's asset increments, IB contract details). None: the broker's capabilities, or SPEC
    §7's stock rule. `multiplier` is what one unit is worth per point of price (SPEC §12): 1 for
    stocks and crypto, the point value of a future (ES: 50), 100 for a US equity option."""

    tick_size: Decimal | None = None
    lot_size: Decimal | None = None
    min_quantity: Decimal | None = None
    min_notional: Decimal | None = None
    kind: InstrumentKind = InstrumentKind.STOCK
    multiplier: Decimal = Decimal(1)


# What an adapter calls when its stream reports a change to one of the account's orders
# (a fill, a cancel, an expiry). Called on the event loop; `OrderState.ticker` is set.
OrderListener = Callable[[OrderState], None]
# What an adapter calls when its connection drops by itself (not on `close()`), with why.
DisconnectListener = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """An adapter's order-event stream: listening (`up`) or not, since when, and why not.
    While it is down the engine asks for the account's working orders over REST instead
    (`tradepipe.engine.order_poller`): events sent meanwhile are lost, not replayed."""

    up: bool
    since: datetime | None  # when it came up or went down (the adapter's clock)
    reason: str | None = None  # why it is down: "connecting", the connection's error …


@dataclass(frozen=True, slots=True)
class AccountSummary:
    equity: Decimal
    cash: Decimal
    buying_power: Decimal


class Broker(Protocol):
    """One account at one broker. Every call may raise a `tradepipe.errors.BrokerError`.

    Optional: an adapter whose order events come over a stream separate from its requests
    (Alpaca's `trade_updates`) has a `stream_health` property answering a `StreamHealth`; read
    it through `stream_health(broker)`. The others have none: the paper broker has no stream,
    ccxt polls its orders itself, and IB's one socket carries both (down is down)."""

    name: str
    capabilities: Capabilities

    def canonical_ticker(self, ticker: str) -> str:
        """This broker's one spelling of the instrument a ticker names ("NASDAQ:AAPL" and
        "AAPL" are one stock): the engine keys lanes, journaled orders and positions and
        reconciliation by it. Pure (no I/O), idempotent, and the spelling the broker itself
        reports positions and orders under. `default_canonical_ticker` unless the broker
        names instruments otherwise."""
        ...

    async def connect(self) -> None:
        """Connect (or reconnect after a failure); raises `BrokerUnavailable` if it cannot.
        Credentials that the broker refuses raise `BrokerError` naming the account."""
        ...

    def listen(self, listener: OrderListener) -> None:
        """Register the engine's callback for order changes the broker reports on its own
        (streams). Brokers without a stream never call it; the engine also polls."""
        ...

    def on_disconnect(self, listener: DisconnectListener) -> None:
        """Register the engine's callback for a connection that drops by itself (IB Gateway's
        nightly restart): the engine reports it and reconnects with backoff at once, instead
        of at the next call that fails. Brokers without a lasting connection never call it."""
        ...

    async def instrument(self, ticker: str) -> InstrumentRules:
        """Price tick, quantity step and minimums of one instrument (may load market data)."""
        ...

    async def close(self) -> None: ...

    async def submit(self, request: OrderRequest) -> OrderState:
        """Send one order. Submitting a client order id the broker already has returns that
        order's state and sends nothing: the id is what makes a retry safe."""
        ...

    async def submit_bracket(
        self, entry: OrderRequest, children: Sequence[OrderRequest]
    ) -> list[OrderState]:
        """Send an entry with its take-profit / stop-loss children as one bracket (OTOCO): the
        children become active when the entry fills, and one filling cancels the other. Only
        brokers with `capabilities.brackets`. Answers the entry's state, then each child's."""
        ...

    async def replace(self, client_order_id: str, request: OrderRequest) -> OrderState:
        """Put `request` (a new client order id) in the place of a working order: the old one
        is canceled and the new one takes over its bracket link (one-cancels-other with the
        take-profit). Raises `OrderRejected` if the old order is no longer working. Replacing
        with an id the broker already has returns that order's state and changes nothing."""
        ...

    async def get_order(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> OrderState | None:
        """The broker's view of an order by our id; None if the broker never received it.
        `ticker` is the order's instrument (the engine always knows it): brokers that look
        orders up per market (ccxt) need it after a restart."""
        ...

    async def cancel(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> OrderState | None: ...

    async def open_orders(self, ticker: str | None = None) -> list[OrderState]: ...

    async def position(self, ticker: str) -> Position: ...

    async def positions(self) -> list[Position]: ...

    async def quote(self, ticker: str) -> Decimal | None: ...

    async def account(self) -> AccountSummary: ...

    async def observe_price(self, ticker: str, price: Decimal) -> list[OrderState]:
        """A price seen in a signal. Only brokers with `marks_from_signals` act on it; the
        answer lists orders that the new price filled."""
        ...


class OptionsBroker(Broker, Protocol):
    """A broker with `capabilities.options` (SPEC §15): it lists an underlying's option
    chain; its orders, positions and fills name contracts by their OCC symbol
    (`core.options.occ_symbol`), each worth 100 units of the underlying."""

    async def option_chain(self, underlying: str) -> list[OptionContract]:
        """The underlying's listed contracts (every expiration from today on, calls and
        puts). Raises `OrderRejected` naming the underlying if it has no options."""
        ...


class FuturesBroker(Broker, Protocol):
    """A broker with `capabilities.continuous_futures` (SPEC §15)."""

    async def futures_contracts(self, root: str) -> list[ListedFuture]:
        """The root's listed dated contracts (from today on), named as this broker's
        orders name them. Raises `OrderRejected` naming the root if it lists none."""
        ...


def canonical_ticker(broker: object, ticker: str) -> str:
    """`broker.canonical_ticker(ticker)`, or the default for an adapter that does not declare
    its own spelling (it then names instruments the default way)."""
    own = getattr(broker, "canonical_ticker", None)
    return own(ticker) if callable(own) else default_canonical_ticker(ticker)


def stream_health(broker: object) -> StreamHealth | None:
    """The broker's order-event stream as it is now; None for a broker without one."""
    health = getattr(broker, "stream_health", None)
    return health if isinstance(health, StreamHealth) else None
