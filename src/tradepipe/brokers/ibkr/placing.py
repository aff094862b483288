"""Placing an order at IB: a bracket's parent held by TWS until its last child is sent (the
children one OCA group), then the wait until IB has answered every one of them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import ib_async

from tradepipe.brokers.ibkr import lookup
from tradepipe.brokers.ibkr.moves import UNACKNOWLEDGED
from tradepipe.brokers.ibkr.orders import to_ib_order
from tradepipe.core.model import OrderRequest, OrderState, OrderStatus
from tradepipe.errors import BrokerUnavailable, OrderRejected

if TYPE_CHECKING:
    from tradepipe.brokers.ibkr.broker import IbkrBroker


async def place(
    broker: IbkrBroker, entry: OrderRequest, children: Sequence[OrderRequest]
) -> list[OrderState]:
    """Sent once: an id IB already knows answers its state (and its children's)."""
    broker._link()
    orders = [to_ib_order(r, broker._account) for r in (entry, *children)]
    existing = await broker._lookup(entry.client_order_id)
    if existing is not None:  # sent before (a retry): answer, send nothing
        states = [existing]
        for child in children:
            state = await broker._lookup(child.client_order_id)
            if state is not None:
                states.append(state)
        return states
    contract = (await broker._details(entry.ticker)).contract
    assert contract is not None  # contract details always describe a contract
    for request in (entry, *children):
        broker._tickers[request.client_order_id] = request.ticker
        broker._quantities[request.client_order_id] = request.quantity
    trades = []
    with broker._errors(f"placing {entry.client_order_id}"):
        broker._link()
        parent = orders[0]
        if children:
            parent.transmit = False  # held by TWS until the last child is sent
        trades.append(broker._ib.placeOrder(contract, parent))
        group = f"oca-{entry.client_order_id}"
        for index, order in enumerate(orders[1:], start=1):
            order.parentId = parent.orderId
            order.ocaGroup, order.ocaType = group, 2  # a partial fill reduces the other leg
            order.transmit = index == len(children)
            trades.append(broker._ib.placeOrder(contract, order))
    await acknowledged(broker, trades, entry.client_order_id)
    states = [lookup.state_of(broker, t.order.orderRef, [t]) for t in trades]
    if states[0].status is OrderStatus.REJECTED:
        raise OrderRejected(states[0].message or "IB rejected the order")
    for state in states:
        broker._reporter.heard.setdefault(state.client_order_id, state)
    return states


async def acknowledged(broker: IbkrBroker, trades: list[ib_async.Trade], what: str) -> None:
    """Wait until IB answered every order (or refused it); no answer → outcome unknown."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + broker._session.timeout
    while any(t.orderStatus.status in UNACKNOWLEDGED for t in trades):
        if trades[0].orderStatus.status == "Cancelled":
            return  # the entry was refused: its children go with it (Inactive is not)
        if not broker._ib.isConnected():
            raise BrokerUnavailable(f"IB {broker.name}: {broker._session.down()} (placing {what})")
        if loop.time() > deadline:
            raise BrokerUnavailable(
                f"IB {broker.name}: no answer for {what} within {broker._session.timeout:g} s;"
                " it is looked up by its id"
            )
        await broker._session.changed(deadline)
