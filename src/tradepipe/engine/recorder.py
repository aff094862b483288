"""The recorder: what the broker says of our orders goes into the journal here, and only here —
order states, fills, lost answers — along with the write-ahead of an order before it is sent."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tradepipe.brokers.base import Broker
from tradepipe.core import brackets
from tradepipe.core.fills import fills_to_journal
from tradepipe.core.model import (
    WORKING_ORDER,
    OrderRequest,
    OrderRole,
    OrderState,
    OrderStatus,
    Side,
)
from tradepipe.core.notify import Notify, NotifyKind, no_notify
from tradepipe.core.tally import FillBooked
from tradepipe.engine.current import Current
from tradepipe.errors import BrokerError, OrderRejected
from tradepipe.journal import DeliveryRow, Journal, OrderRow

log = logging.getLogger(__name__)

# How far back a fill journaled without a fee may still get it from its broker: IB replays to a
# new connection (reqExecutions) the executions of the current day with their commission reports,
# and of up to 7 days when TWS's Trade Log is set to show more days; an older fill's report never
# comes again. 7 days covers the longest replay, and keeps the read at a restart to a week of
# fills (the bound is on the fill's time, not the order's: a GTC order may fill days later).
FEES_REPORTED_WITHIN = timedelta(days=7)


class Recorder:
    """Journals broker answers. `settle_due(account, ticker)` is told when an order of a broker
    without native brackets ended or filled a bracket's entry (the emulator takes it from there)."""

    def __init__(
        self,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        *,
        settle_due: Callable[[str, str], None],
        filled: Callable[[str], None] = lambda account: None,
        fill_booked: Callable[[FillBooked], None] = lambda fill: None,
        order_sent: Callable[[str, OrderRole, str | None], None] = lambda a, r, s: None,
        notify: Notify = no_notify,
    ) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self.settle_due = settle_due
        self.filled = filled  # told the account once a fill is journaled (equity snapshots)
        self.fill_booked = fill_booked  # each new fill, once journaled (the risk limits' tallies)
        # Each order about to reach the broker: account, role, subscription (the order rate).
        self.order_sent = order_sent
        self.notify = notify  # a new fill is told (SPEC §14 kind `fill`) with its order
        # client order id → its fills journaled without a fee, at brokers whose fees follow
        # their fills (`Capabilities.fees_follow_fills`); emptied as the fees come. Read from
        # the journal for each such account at its first answer (`_seed_feeless`): a fee the
        # broker reports after a restart is journaled too.
        self.feeless: dict[str, set[str]] = {}
        self._seeded: dict[str, Broker] = {}  # account → its broker when `feeless` was read

    def record_state(
        self,
        account: str,
        ticker: str,
        state: OrderState,
        *,
        streamed: bool = False,
        new: OrderRow | None = None,
    ) -> OrderState:
        """Journal what the broker says of one of our orders, and every fill it reports;
        answers the state as journaled: read against the quantity sent (fills covering it
        mean filled, whatever a broker that forgot the order says). A `streamed` event may
        arrive after a poll already journaled a later state: it never moves an order back
        from final, nor its filled quantity down. `new`: the order's row as inserted, when
        the caller knows no write to it since (it then has no fills yet): not read again."""
        journaled = new or self.journal.order_by_client_id(state.client_order_id)
        if journaled is None:
            return state  # not ours: reconciliation reports such orders
        state = state.against(Decimal(journaled["quantity"]))
        if streamed and (
            (OrderStatus(journaled["status"]).is_final and not state.status.is_final)
            or state.filled_quantity < Decimal(journaled["filled_quantity"])
        ):
            return state
        broker = self.current.brokers.get(account)
        if broker is not None and self._seeded.get(account) is not broker:
            self._seed_feeless(account, broker)
        if (
            journaled["status"] == state.status
            and Decimal(journaled["filled_quantity"]) == state.filled_quantity
            and journaled["broker_order_id"] == state.broker_order_id
            and journaled["broker_message"] == state.message
        ):
            if state.client_order_id in self.feeless:
                self._late_fees(account, state)
            return state  # a poll that learned nothing: no write, no fsync on the shared loop
        with self.journal.transaction():  # one commit for the order and its fills
            self.journal.update_order(
                state.client_order_id,
                row=journaled,  # read above, with no await since
                status=state.status,
                filled_quantity=state.filled_quantity,
                average_fill_price=state.average_fill_price,
                broker_order_id=state.broker_order_id,
                broker_message=state.message,
                updated_at=self.clock(),
            )
            fills = state.fills
            if state.filled_quantity > 0:
                fills = tuple(
                    fills_to_journal(
                        state,
                        [] if new else self.journal.order_fills(journaled["id"]),
                        Side(journaled["side"]),
                        ticker,
                        self.clock(),
                    )
                )
            booked = [
                FillBooked(
                    account,
                    ticker,
                    Side(fill.side),
                    fill.quantity,
                    fill.price,
                    fill.filled_at,
                    journaled["subscription"],
                )
                for fill in fills
                if self.journal.record_fill(
                    fill_id=f"{account}:{fill.fill_id}",
                    order_id=journaled["id"],
                    account=account,
                    ticker=ticker,
                    side=fill.side,
                    quantity=fill.quantity,
                    price=fill.price,
                    filled_at=fill.filled_at,
                    fee=fill.fee,
                    fee_currency=fill.fee_currency,
                )
            ]
            if state.status is OrderStatus.REJECTED and journaled["status"] in WORKING_ORDER:
                # Refused after the broker took it (a submit refused at once is its delivery's
                # failure, told there): a working order, a bracket's leg, a held child.
                self.notify(
                    NotifyKind.FAILURE,
                    f"order {state.client_order_id}",
                    refusal_text(journaled, state),
                )
            if booked:
                self.notify(
                    NotifyKind.FILL,
                    f"{account} {ticker}",
                    fill_text(journaled, booked, state.filled_quantity),
                )
        if broker is not None and broker.capabilities.fees_follow_fills:
            feeless = {f"{account}:{f.fill_id}" for f in fills if f.fee is None}
            if feeless:
                self.feeless.setdefault(state.client_order_id, set()).update(feeless)
            if state.client_order_id in self.feeless:  # fills journaled before, fees now
                self._late_fees(account, state)
        for booked_fill in booked:  # once committed with its order
            self.fill_booked(booked_fill)
        if fills:
            self.filled(account)

        if (
            broker is not None
            and not broker.capabilities.brackets
            and (state.status.is_final or brackets.fills_a_child(journaled, state.filled_quantity))
        ):
            self.settle_due(account, ticker)
        return state

    def _seed_feeless(self, account: str, broker: Broker) -> None:
        """Once per account and broker in this process (before its first answer is read): the
        account's recent fills the journal holds without a fee, when its broker reports fees
        after fills — a report may come after a restart (IB re-sends an execution's commission
        report with the executions a new connection asks for). One read; none for other brokers."""
        self._seeded[account] = broker
        if not broker.capabilities.fees_follow_fills:
            return
        since = self.clock() - FEES_REPORTED_WITHIN
        for client_order_id, fill_id in self.journal.feeless_fills(account, since):
            self.feeless.setdefault(client_order_id, set()).add(fill_id)

    def _late_fees(self, account: str, state: OrderState) -> None:
        """Journal the fees the broker now reports for fills journaled without one."""
        waiting = self.feeless[state.client_order_id]
        for fill in state.fills:
            fill_id = f"{account}:{fill.fill_id}"
            if fill.fee is not None and fill_id in waiting:
                self.journal.set_fill_fee(fill_id, fill.fee, fill.fee_currency, self.clock())
                waiting.discard(fill_id)
        if not waiting:
            del self.feeless[state.client_order_id]

    async def look_up(self, broker: Broker, order: OrderRow) -> OrderRow:
        """The broker's view of a journaled order, journaled; answers the row as it is now."""
        found = await broker.get_order(order["client_order_id"], ticker=order["ticker"])
        if found is None:
            return order
        self.record_state(order["account"], order["ticker"], found)
        row = self.journal.order_by_id(order["id"])
        assert row is not None
        return row

    def journal_order(self, request: OrderRequest, **kwargs: Any) -> int:
        """Journal an order before the broker hears of it (an operator's has no delivery)."""
        return self.journal_order_row(request, **kwargs)["id"]

    def journal_order_row(
        self,
        request: OrderRequest,
        *,
        delivery: DeliveryRow | None = None,
        signal_id: int | None = None,
        parent_id: int | None = None,
        status: OrderStatus | None = None,
        replaces: str | None = None,
    ) -> OrderRow:
        """`journal_order`, answering the row as journaled."""
        now = self.clock()
        return self.journal.insert_order_row(
            client_order_id=request.client_order_id,
            delivery_id=delivery["id"] if delivery else None,
            signal_id=signal_id,
            subscription=delivery["subscription"] if delivery else None,
            account=request.account,
            ticker=request.ticker,
            side=request.side,
            quantity=request.quantity,
            order_type=request.order_type,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            trail_amount=request.trail_amount,
            trail_percent=request.trail_percent,
            time_in_force=request.time_in_force,
            role=request.role,
            extended_hours=int(request.extended_hours),
            parent_id=parent_id,
            status=status or OrderStatus.SUBMITTING,
            replaces=replaces,
            created_at=now,
            updated_at=now,
        )

    async def send(
        self, broker: Broker, request: OrderRequest, *, new: OrderRow | None = None
    ) -> OrderState:
        """Send one journaled order (no bracket, no replace), on disk first. A refusal is
        journaled rejected; any other broker error leaves its fate unknown, settled by lookup
        (as a delivery's orders are); both are raised. Answers the state as journaled. `new`:
        its row as it is now, never sent before (`record_state`)."""
        written = self.journal.orders_written
        await self.journal.durable()  # write-ahead: the order is on disk before it is sent
        subscription = new["subscription"] if new else None
        self.order_sent(request.account, request.role, subscription)
        try:
            state = await broker.submit(request)
        except OrderRejected as e:
            self.mark_orders([request], OrderStatus.REJECTED, str(e))
            raise
        except BrokerError as e:
            self.mark_orders([request], OrderStatus.UNKNOWN, str(e))
            raise
        if self.journal.orders_written != written:  # an order was written meanwhile: read it
            new = None
        return self.record_state(request.account, request.ticker, state, new=new)

    def mark_orders(self, requests: list[OrderRequest], status: OrderStatus, message: str) -> None:
        """The broker's answer to a whole bracket (or one order) that failed as one call."""
        with self.journal.transaction():
            for request in requests:
                self.journal.update_order(
                    request.client_order_id,
                    status=status,
                    broker_message=message,
                    updated_at=self.clock(),
                )

    def journal_status(self, order: OrderRow, status: OrderStatus, message: str) -> None:
        self.journal.update_order(
            order["client_order_id"], status=status, broker_message=message, updated_at=self.clock()
        )


def refusal_text(order: OrderRow, state: OrderState) -> str:
    """A failure notice for an order the broker refused after it had taken it."""
    return (
        f"{order['account']}: the broker refused {order['role']} order"
        f" {order['client_order_id']} ({order['side']} {_plain(Decimal(order['quantity']))}"
        f" {order['ticker']}) after taking it: {state.message or 'it gave no reason'}"
    )


def fill_text(order: OrderRow, booked: list[FillBooked], filled: Decimal) -> str:
    """A fill notification: what traded, at what average price, for whom, and how much of the
    order is done (`filled`: the order's filled quantity now)."""
    quantity = sum((f.quantity for f in booked), Decimal(0))
    value = sum((f.quantity * f.price for f in booked), Decimal(0))
    first = booked[0]
    verb = "bought" if first.side is Side.BUY else "sold"
    price = value / quantity if quantity else first.price
    whose = f"subscription {first.subscription}" if first.subscription else "the operator"
    return (
        f"{first.account}: {verb} {_plain(quantity)} {first.ticker} at {_plain(price)}"
        f" ({order['role']} order {order['client_order_id']} of {whose};"
        f" {_plain(filled)} of {_plain(Decimal(order['quantity']))} filled)"
    )


def _plain(value: Decimal) -> str:
    """A quantity or price as a person writes it: no exponent, no trailing zeros."""
    return format(value.quantize(Decimal("0.0001")).normalize(), "f")
