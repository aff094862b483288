"""`replace` at IB: a modification in place, done only once IB answers with the new values.

The same IB order (order id, permId, parent, OCA group) is sent again with the new quantity /
prices and the new client order id in `orderRef`, so a move sent again is found by the new id
and never sent twice. The old id then answers canceled, "replaced by <new id>" (in this process
only: after a restart IB knows the order by the new id alone). When IB refuses a modification,
ib_async marks the still-working order Cancelled locally: that guess is never reported; IB is
asked again for what it holds, and the refusal raises OrderRejected with IB's words and where
the order stays. No answer in time → BrokerUnavailable (the order is asked of IB at every lookup
until IB shows it).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ib_async

from tradepipe.brokers.ibkr import lookup
from tradepipe.brokers.ibkr.orders import FINAL, to_ib_modify
from tradepipe.core.model import OrderRequest, OrderState, OrderStatus
from tradepipe.errors import BrokerError, BrokerUnavailable, OrderRejected

if TYPE_CHECKING:
    from tradepipe.brokers.ibkr.broker import IbkrBroker

# Statuses of an order IB has not acknowledged yet.
UNACKNOWLEDGED = ("PendingSubmit", "ApiPending")


@dataclass
class Move:
    """A modification sent to IB and not yet settled (`replace`)."""

    old_id: str
    new_id: str
    was: OrderState  # the order as it worked before
    status: str  # ib_async's status before (restored if ib_async guesses Cancelled)
    error: tuple[int, str] | None = None  # IB's answer, if an error


async def replace(broker: IbkrBroker, client_order_id: str, request: OrderRequest) -> OrderState:
    """IB's modification in place, done only once IB answers with the new values."""
    broker._session.link()
    existing = await broker._lookup(request.client_order_id)
    if existing is not None:  # moved before (a retry): answer, send nothing
        return existing
    trade = await movable(broker, client_order_id)
    was = lookup.state_of(broker, client_order_id, [trade])
    if was.filled_quantity:
        raise OrderRejected(
            f"IB {broker.name}: {client_order_id} is partially filled ({was.filled_quantity}"
            f" of {was.quantity}); IB counts a modification's quantity from the order's"
            " start, so it is not moved: it stays working as it is"
        )
    modified = to_ib_modify(client_order_id, trade.order, request)
    order_id = trade.order.orderId
    move = Move(client_order_id, request.client_order_id, was, trade.orderStatus.status)
    broker._tickers[request.client_order_id] = request.ticker
    broker._quantities[request.client_order_id] = request.quantity
    broker._session.link()  # (the lookups above awaited: the link may have dropped meanwhile)
    # Pending from here, and only if sent: a move that never left would otherwise keep
    # the order unmovable for the process's life.
    broker._moves[order_id] = move
    try:
        with broker._session.errors(f"moving {client_order_id}"):
            broker._ib.placeOrder(trade.contract, modified)
    except BrokerError:
        broker._moves.pop(order_id, None)
        raise
    await answered(broker, trade, move)
    if move.error is not None:
        # Refused — or echoed and then refused: an error with the new values is ambiguous,
        # so IB is asked what it holds in both cases.
        await refused(broker, trade, move)
    settle(broker)
    return lookup.state_of(broker, move.new_id, [trade])


async def movable(broker: IbkrBroker, client_order_id: str) -> ib_async.Trade:
    """The working order of this client that `replace` may modify, or why not."""
    pending = [m.new_id for m in broker._moves.values() if m.old_id == client_order_id]
    if pending:
        raise OrderRejected(
            f"IB {broker.name}: the move of {client_order_id} to {pending[0]} is not settled"
            " with IB (no answer, or what IB holds could not be read yet); it is not moved"
            " again before IB shows where it is (check it in TWS)"
        )
    trades = [
        t for t in lookup.current(broker, client_order_id) if t.orderStatus.status not in FINAL
    ]
    if not trades:
        found = await broker._lookup(client_order_id)
        elsewhere = lookup.elsewhere(broker, client_order_id)
        if found is None:
            raise OrderRejected(f"IB {broker.name}: no order {client_order_id} to move")
        if not found.status.is_final and elsewhere:
            raise OrderRejected(f"IB {broker.name}: {lookup.not_ours(broker, elsewhere[0])}")
        raise OrderRejected(
            f"IB {broker.name}: order {client_order_id} is {found.status}: nothing to move"
        )
    (trade,) = trades
    status = trade.orderStatus.status
    if status == "Inactive":
        raise OrderRejected(
            f"IB {broker.name}: {client_order_id} is held inactive by IB; it is not moved"
            " while IB holds it (it stays as it is: move it in TWS if needed)"
        )
    if status in UNACKNOWLEDGED:
        raise OrderRejected(
            f"IB {broker.name}: IB has not acknowledged {client_order_id} yet; it is not"
            " moved before IB does"
        )
    return trade


async def answered(broker: IbkrBroker, trade: ib_async.Trade, move: Move) -> None:
    """Wait for IB's answer to a modification: its openOrder with the new `orderRef`, or
    an error for the order; none in time → BrokerUnavailable (IB may have moved it)."""
    session = broker._session
    loop = asyncio.get_running_loop()
    deadline = loop.time() + session.timeout
    unknown = (
        f"IB may or may not have moved it: {move.new_id} is looked up, and the order"
        " is asked of IB at every lookup until IB shows it"
    )
    while trade.order.orderRef != move.new_id and move.error is None:
        if not session.ib.isConnected():
            raise BrokerUnavailable(
                f"IB {broker.name}: {session.down()} (moving {move.old_id}; {unknown})"
            )
        if loop.time() > deadline:
            raise BrokerUnavailable(
                f"IB {broker.name}: no answer within {session.timeout:g} s to moving"
                f" {move.old_id} to {move.new_id}; {unknown}"
            )
        await session.changed(deadline)


async def refused(broker: IbkrBroker, trade: ib_async.Trade, move: Move) -> None:
    """IB answered a modification with an error: ask IB what it holds now (ib_async
    marked the order Cancelled, or ValidationError, on its own), then raise OrderRejected
    with IB's words and where the order stays — unless IB did move it (a warning)."""
    assert move.error is not None
    code, words = move.error
    refusal = f"IB {broker.name}: IB refused to move {move.old_id} (error {code}: {words})"
    try:
        asked = await lookup.ask_ib(broker, f"checking the refused move of {move.old_id}:")
    except BrokerError as e:
        # Where the order is, is not known: fate unknown (the contract), never "refused".
        raise BrokerUnavailable(
            f"{refusal}; what IB holds now could not be read ({e}): the order is asked of"
            " IB at every lookup"
        ) from e
    if trade.order.orderRef == move.new_id:
        return  # IB moved it after all (its error was a warning): settled by the caller
    working = any(t is trade for t in asked)  # if so, settled by the asking
    broker._moves.pop(trade.order.orderId, None)
    state = lookup.known(broker, move.old_id, asked)
    if state is None:
        raise OrderRejected(f"{refusal}; IB no longer lists {move.old_id}")
    broker._report(state)
    if working:
        raise OrderRejected(f"{refusal}; it stays working as IB holds it: {shown(state)}")
    raise OrderRejected(f"{refusal}; IB no longer lists it as working ({state.status})")


def move_of(broker: IbkrBroker, trade: ib_async.Trade) -> Move | None:
    """The unsettled modification of one of this client's orders, if any."""
    if trade.order.clientId != broker._session.client_id:
        return None
    return broker._moves.get(trade.order.orderId)


def settle(broker: IbkrBroker, listed: Sequence[ib_async.Trade] = ()) -> None:
    """Modifications IB has answered. With the new values (its openOrder carries the new
    `orderRef`): the old id ends as replaced, the new one is reported. Refused (an error),
    and `listed` by IB as it was: the order is current again — a status ib_async guessed
    (Cancelled, ValidationError) where IB sent none gives way to the one before."""
    for trade in broker._ib.trades():
        move = move_of(broker, trade)
        if move is None:
            continue
        if trade.order.orderRef != move.new_id:
            if move.error is not None and any(t is trade for t in listed):
                if trade.orderStatus.status in (*FINAL, "ValidationError"):
                    trade.orderStatus.status = move.status
                del broker._moves[trade.order.orderId]
                broker._report(lookup.state_of(broker, move.old_id, [trade]))
            continue
        del broker._moves[trade.order.orderId]
        moved = dataclasses.replace(
            move.was,
            status=OrderStatus.CANCELED,
            message=f"replaced by {move.new_id}: IB moved the order in place (IB order"
            f" {trade.order.permId} now carries {move.new_id})",
        )
        broker._moved[move.old_id] = moved
        broker._report(moved)
        broker._report(lookup.state_of(broker, move.new_id, [trade]))


def shown(state: OrderState) -> str:
    """An order as a person reads it: "sell 5 AAPL stop 95"."""
    words = [str(state.side or ""), f"{state.quantity}", state.ticker or ""]
    if state.stop_price is not None:
        words.append(f"stop {state.stop_price}")
    if state.limit_price is not None:
        words.append(f"limit {state.limit_price}")
    if state.stop_price is None and state.limit_price is None:
        words.append(str(state.order_type or ""))
    return " ".join(w for w in words if w)
