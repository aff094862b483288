"""Orders on their way to the broker: each journaled with its deterministic client order id
before the broker hears of it (write-ahead, so a restart asks instead of sending twice), its
answer journaled by the recorder; an exit's fill awaited; a ticker's open orders canceled."""

from __future__ import annotations

import asyncio
import logging
from contextlib import nullcontext
from decimal import Decimal

from tradepipe.brokers.base import Broker
from tradepipe.core.ids import client_order_id
from tradepipe.core.model import OrderRequest, OrderState, OrderStatus
from tradepipe.core.plan import PlannedOrder
from tradepipe.core.resolve import Intent
from tradepipe.engine.current import Current
from tradepipe.engine.drill import pause_point
from tradepipe.engine.lanes import Work
from tradepipe.engine.recorder import Recorder
from tradepipe.errors import BrokerError, OrderRejected
from tradepipe.journal import DeliveryRow, Journal, OrderRow

log = logging.getLogger(__name__)


class Sending:
    def __init__(
        self, journal: Journal, current: Current, recorder: Recorder, fill_poll_interval: float
    ) -> None:
        self.journal = journal
        self.current = current
        self.recorder = recorder
        self.fill_poll_interval = fill_poll_interval

    async def submit_once(
        self,
        work: Work,
        delivery: DeliveryRow,
        broker: Broker,
        request: OrderRequest,
        children: list[OrderRequest],
        journaled_ids: set[str],
        *,
        replaces: str | None = None,
    ) -> OrderState:
        """Send an order (with its bracket children, or in the place of a working order) unless
        the journal shows it was sent before; then ask the broker about it instead of sending it
        again."""
        record = self.recorder
        journaled = request.client_order_id in journaled_ids
        found = None
        rows: dict[str, OrderRow] = {}  # the rows journaled here, as written
        if journaled:
            found = await broker.get_order(request.client_order_id, ticker=request.ticker)
        if found is not None:
            states = [found]
            for child in children:
                child_state = await broker.get_order(child.client_order_id, ticker=child.ticker)
                if child_state is not None:
                    states.append(child_state)
        else:
            if not journaled:
                # The entry and its children, one unit (an entry alone is one write: a unit
                # by itself, journal.write_one).
                with self.journal.transaction() if children else nullcontext():
                    # A replacement inherits the replaced order's place in its bracket.
                    replaced = replaces and self.journal.order_by_client_id(replaces)
                    row = record.journal_order_row(
                        request,
                        delivery=delivery,
                        signal_id=work.signal_id,
                        parent_id=replaced["parent_id"] if replaced else None,
                        replaces=replaces,
                    )
                    rows[request.client_order_id] = row
                    journaled_ids.add(request.client_order_id)
                    # Without native brackets the children wait here for the entry's fill.
                    held = None if broker.capabilities.brackets else OrderStatus.HELD
                    for child in children:
                        rows[child.client_order_id] = record.journal_order_row(
                            child,
                            delivery=delivery,
                            signal_id=work.signal_id,
                            parent_id=row["id"],
                            status=held,
                        )
                        journaled_ids.add(child.client_order_id)
            written = self.journal.orders_written
            # Write-ahead: the order is on disk before the broker hears of it, so that a
            # restart can always ask the broker about it (tradepipe.journal.group_commit).
            await self.journal.durable()
            await pause_point("submit")
            # One call to the broker, one order towards the rate (a bracket goes as one).
            record.order_sent(request.account, request.role, delivery["subscription"])
            if replaces is not None:
                states = [await broker.replace(replaces, request)]
            elif children and broker.capabilities.brackets:
                states = await broker.submit_bracket(request, children)
            else:
                states = [await broker.submit(request)]
            await pause_point("answer")
        # As journaled: read against what was sent (fills covering it mean filled). The rows
        # written above are still the journal's unless something wrote an order meanwhile.
        if not rows or self.journal.orders_written != written:
            rows = {}
        states = [
            record.record_state(request.account, request.ticker, s, new=rows.get(s.client_order_id))
            for s in states
        ]
        if replaces is not None:
            try:  # the replaced order's end, for the journal; the broker has it either way
                old = await broker.get_order(replaces, ticker=request.ticker)
            except BrokerError as e:
                log.warning("order %s, replaced: its state is not known yet: %s", replaces, e)
                old = None
            if old is not None:
                record.record_state(request.account, request.ticker, old)
        return states[0]

    async def wait_for_fill(
        self, broker: Broker, request: OrderRequest, state: OrderState, timeout: Decimal
    ) -> OrderState:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout)
        while state.status is not OrderStatus.FILLED and loop.time() < deadline:
            if state.status.is_final:
                break
            await asyncio.sleep(self.fill_poll_interval)
            found = await broker.get_order(request.client_order_id, ticker=request.ticker)
            if found is not None:
                state = self.recorder.record_state(request.account, request.ticker, found)
        return state

    def request(
        self, work: Work, delivery: DeliveryRow, intent: Intent, step: PlannedOrder
    ) -> OrderRequest:
        return OrderRequest(
            client_order_id=client_order_id(
                self.journal.instance, work.signal_id, delivery["subscription"], step.leg
            ),
            account=delivery["account"],
            # An option contract or a continuous future's dated contract (SPEC §15).
            ticker=step.ticker or work.signal.ticker,
            side=step.side,
            quantity=step.quantity,
            order_type=step.order_type,
            time_in_force=intent.time_in_force,
            role=step.role,
            limit_price=step.limit_price,
            stop_price=step.stop_price,
            trail_amount=step.trail_amount,
            trail_percent=step.trail_percent,
            extended_hours=intent.extended_hours,
        )

    async def cancel_ticker(
        self,
        account: str,
        ticker: str,
        why: str,
        *,
        leave_ours: bool = False,
        broker: Broker | None = None,
    ) -> tuple[list[str], list[str]]:
        """Cancel the ticker's open orders at the broker, and the emulated bracket legs only
        tradepipe holds; answers their ids, and those the broker would not cancel with its
        reason. An order tradepipe did not place (typed into TWS by hand) that the broker will
        not let us cancel stays working, reported, never fatal: it must not block every signal
        of the ticker. One of our own that will not cancel (placed under another IB client id,
        or an exchange that refuses) raises, so no new order joins it, unless `leave_ours`
        (flatten: the operator asked to close, and is shown what is left)."""
        broker = broker if broker is not None else self.current.brokers[account]
        canceled, left = [], []
        for order in await broker.open_orders(ticker):
            await self.journal.durable()  # write-ahead: what led to the cancel is on disk
            try:
                state = await broker.cancel(order.client_order_id, ticker=ticker)
            except OrderRejected as e:
                ours = self.journal.order_by_client_id(order.client_order_id) is not None
                if ours and not leave_ours:
                    raise
                cid = order.client_order_id
                log.warning("%s %s: order %s left working: %s", account, ticker, cid, e)
                left.append(f"{cid}: {e}")
                continue
            if state is not None:
                self.recorder.record_state(account, ticker, state)
            canceled.append(order.client_order_id)
        for child in self.journal.bracket_children(account, ticker):
            if child["status"] == OrderStatus.HELD:
                self.recorder.journal_status(child, OrderStatus.CANCELED, why)
                canceled.append(child["client_order_id"])
        return canceled, left
