"""What IB holds of an order: this session's trades that ib_async keeps current, and what IB
answers when asked anew (the working orders of every client id, completed orders, today's
executions). An order's id is our `orderRef`, or `ib-<permId>` for one placed in TWS by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import ib_async

from tradepipe.brokers.ibkr import moves
from tradepipe.brokers.ibkr.orders import FINAL, fills_state, trade_state
from tradepipe.core.model import OrderState

if TYPE_CHECKING:
    from tradepipe.brokers.ibkr.broker import IbkrBroker


def id_of(trade: ib_async.Trade) -> str:
    """Our client order id, or for an order placed in TWS by hand (no `orderRef`) one made
    of IB's permanent order id, the same at every call."""
    return trade.order.orderRef or f"ib-{trade.order.permId}"


async def lookup(broker: IbkrBroker, client_order_id: str) -> OrderState | None:
    """Everything IB knows of an id: this session's orders, else IB is asked anew for the
    open orders of every client id (an earlier session may have used another one), the
    completed orders and today's executions (fills alone never settle it while IB may
    still describe the order)."""
    trades = current(broker, client_order_id)
    if trades:
        return state_of(broker, client_order_id, trades)
    if client_order_id in broker._moved:
        return broker._moved[client_order_id]
    asked = await ask_ib(broker, "looking up")
    return broker._moved.get(client_order_id) or known(broker, client_order_id, asked)


async def resync(broker: IbkrBroker) -> None:
    """After each connect (a new process's first too): today's fills, with the commission
    reports IB sends again with them, and the orders' states, reported where changed."""
    asked = await ask_ib(broker, "re-syncing")
    ids = {t.order.orderRef for t in (*broker._ib.trades(), *asked) if t.order.orderRef}
    ids |= {f.execution.orderRef for f in broker._ib.fills() if f.execution.orderRef}
    for client_order_id in sorted(ids | set(broker._reporter.heard)):
        state = known(broker, client_order_id, asked)
        if state is not None:
            broker._report(state)


async def ask_ib(broker: IbkrBroker, doing: str) -> list[ib_async.Trade]:
    """Ask IB anew for the open orders of every client id, the completed orders and today's
    executions; answers the orders (ib_async keeps the executions)."""
    session = broker._session
    async with session.lock:
        listed = await ask_open(broker, doing)
        completed = await session.ask(
            f"{doing} completed orders", session.ib.reqCompletedOrdersAsync(True)
        )
        await session.ask(f"{doing} executions", session.ib.reqExecutionsAsync())
    return [*listed, *completed]


async def ask_open(broker: IbkrBroker, doing: str) -> list[ib_async.Trade]:
    """IB's working orders of every client id and those placed in TWS by hand (under the
    lock). ib_async answers this client's own orders with the trades it keeps (their
    statuses only move forward), the others with copies as of now."""
    session = broker._session
    assert session.lock.locked()
    listed = list(await session.ask(f"{doing} open orders", session.ib.reqAllOpenOrdersAsync()))
    moves.settle(broker, listed)
    return listed


def is_current(broker: IbkrBroker, trade: ib_async.Trade) -> bool:
    """ib_async keeps this client id's orders up to date (but for one being modified: IB
    is asked), and a final order stays as it is; another client id's open order is a copy
    of when IB was last asked (IB reports its changes only to the client that placed it)."""
    if trade.order.clientId == broker._client_id:
        return moves.move_of(broker, trade) is None
    return trade.orderStatus.status in FINAL


def current(broker: IbkrBroker, client_order_id: str) -> list[ib_async.Trade]:
    """The order's trades that ib_async keeps current."""
    return [t for t in broker._ib.trades() if id_of(t) == client_order_id and is_current(broker, t)]


def known(
    broker: IbkrBroker, client_order_id: str, asked: Sequence[ib_async.Trade] = ()
) -> OrderState | None:
    """The order's state from what ib_async keeps current and what IB just answered
    (`asked`); None if neither holds anything of it."""
    trades = current(broker, client_order_id)
    trades += [t for t in asked if id_of(t) == client_order_id and all(t is not k for k in trades)]
    if trades:
        return state_of(broker, client_order_id, trades)
    fills = [f for f in broker._ib.fills() if f.execution.orderRef == client_order_id]
    if fills:  # executed, and no longer listed: an order from before this session
        ticker = broker._tickers.get(client_order_id)
        return fills_state(client_order_id, fills, ticker, broker._quantities.get(client_order_id))
    return None


def state_of(broker: IbkrBroker, client_order_id: str, trades: list[ib_async.Trade]) -> OrderState:
    ticker = broker._tickers.get(client_order_id)
    return trade_state(client_order_id, trades, broker._ib.fills(), ticker)


def cancelable(broker: IbkrBroker, client_order_id: str) -> list[ib_async.Trade]:
    """This client's trades of the order that ib_async does not hold for done (also while
    a move of it is unsettled: IB takes a cancel then too)."""
    return [
        t
        for t in broker._ib.trades()
        if id_of(t) == client_order_id
        and t.order.clientId == broker._client_id
        and t.orderStatus.status not in FINAL
    ]


def elsewhere(broker: IbkrBroker, client_order_id: str) -> list[ib_async.Trade]:
    """Another client's (or TWS's) copies of the order."""
    return [
        t
        for t in broker._ib.trades()
        if id_of(t) == client_order_id and t.order.clientId != broker._client_id
    ]


def not_ours(broker: IbkrBroker, trade: ib_async.Trade) -> str:
    """Why this client cannot cancel (or move) another client's working order."""
    who = (
        "in TWS by hand"
        if not trade.order.orderRef and not trade.order.clientId
        else f"by API client id {trade.order.clientId}"
    )
    return (
        f"{id_of(trade)} was placed {who}, and IB lets only that client change or"
        " cancel it; it stays working: change or cancel it in TWS"
    )
