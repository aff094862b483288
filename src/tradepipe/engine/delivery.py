"""One delivery: a signal for one subscription, resolved, decided and carried out. Every order
is journaled with its deterministic client order id before the broker hears of it, so a restart
asks the broker instead of sending twice."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.brokers.base import Broker
from tradepipe.core.ids import client_order_id
from tradepipe.core.model import (
    WORKING_ORDER,
    DeliveryStatus,
    OrderRequest,
    OrderRole,
    OrderState,
    OrderStatus,
)
from tradepipe.core.notify import Notify, NotifyKind, no_notify
from tradepipe.core.plan import Plan, PlannedOrder, Reject, Skip, plan_from_json, plan_to_json
from tradepipe.core.resolve import Intent, resolve_signal
from tradepipe.engine.bracket_emulator import BracketEmulator
from tradepipe.engine.current import Current
from tradepipe.engine.drill import pause_point
from tradepipe.engine.lanes import Work
from tradepipe.engine.metrics import Metrics
from tradepipe.engine.planner import Planner
from tradepipe.engine.reconciler import Reconciler
from tradepipe.engine.recorder import Recorder
from tradepipe.errors import BrokerError, OrderRejected
from tradepipe.journal import Journal

if TYPE_CHECKING:
    from tradepipe.engine.scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    reason: str


class Delivery:
    """Carries out deliveries: resolve, settle what is pending, decide (the planner), then
    execute the plan through the recorder's write-ahead."""

    def __init__(
        self,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        *,
        recorder: Recorder,
        planner: Planner,
        emulator: BracketEmulator,
        reconciler: Reconciler,
        fill_poll_interval: float,
        notify: Notify = no_notify,
        metrics: Metrics | None = None,
    ) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self.recorder = recorder
        self.planner = planner
        self.emulator = emulator
        self.reconciler = reconciler
        self.fill_poll_interval = fill_poll_interval
        # delay and cancel_after (SPEC §13) are journaled and armed by the scheduler.
        self.scheduler: Scheduler | None = None
        self.notify = notify
        self.metrics = metrics or Metrics()

    async def deliver(self, work: Work, delivery: dict[str, Any]) -> Outcome:
        config = work.config if work.config is not None else self.current.config
        subscription = config.subscriptions[delivery["subscription"]]
        strategy = config.strategies[work.strategy]
        broker = self.current.brokers.get(subscription.account)
        if broker is None:
            why = f'account "{subscription.account}" was removed from the config by a reload'
            return self.set_delivery(delivery, "failed", f"{why}; nothing sent")
        signal = work.signal
        intent = resolve_signal(signal, subscription, strategy.defaults)
        if intent.delay and delivery["status"] == DeliveryStatus.QUEUED and self.scheduler:
            postponed = self.scheduler.postpone(work, delivery, intent)
            if postponed is not None:
                return postponed
        # Orders are journaled only once the delivery is planned: no other can have any.
        journaled = (
            {o["client_order_id"] for o in self.journal.orders_for_deliveries([delivery["id"]])}
            if delivery["status"] == "planned"
            else set()
        )
        resuming = bool(journaled)
        try:
            if (
                work.moves_mark
                and signal.signal_price is not None
                and broker.capabilities.marks_from_signals
            ):
                try:
                    moved = await broker.observe_price(signal.ticker, signal.signal_price)
                except OrderRejected as e:  # a signalPrice that is no price: not ours to retry
                    why = f"signalPrice {signal.signal_price} is not a usable mark: {e}"
                    return self.set_delivery(delivery, "rejected", why)
                for state in moved:
                    self.recorder.record_state(subscription.account, signal.ticker, state)
            # What earlier deliveries left unsettled is settled before this one is planned:
            # orders whose answer was lost, and an entry that filled since (or at this very
            # mark) gets its emulated take-profit / stop-loss.
            await self.reconciler.settle_unknown(subscription.account, signal.ticker)
            await self.emulator.settle_brackets(subscription.account, signal.ticker)
            decision = (
                None
                if resuming
                else await self.planner.decide(
                    intent,
                    subscription.account,
                    subscription=delivery["subscription"],
                    strategy=work.strategy,
                    broker=broker,
                    config=config,
                )
            )
        except BrokerError as e:
            return self.set_delivery(delivery, "failed", f"broker {broker.name}: {e}")
        if decision is None:
            # A stop interrupted this delivery while it was sending (orders are journaled before
            # the broker hears of them): carry out the journaled plan, each leg settled by its
            # client order id, rather than plan against a position its own orders changed.
            # Its cancels ran before its first order; again, they would cancel those orders.
            # Without journaled orders nothing was sent: planning again is safe, and it goes
            # through the approval gate below like any new delivery.
            log.info("delivery %s: resuming its journaled plan", delivery["id"])
            plan = replace(plan_from_json(json.loads(delivery["plan"])), cancel_open_orders=False)
            outcome = await self._execute(work, delivery, intent, broker, plan, journaled)
            return await self._finish(work, delivery, outcome, plan)
        explained = intent.explain(delivery["subscription"], work.strategy)
        self.journal.update_delivery(
            delivery["id"],
            status="planned",
            plan=plan_to_json(decision),
            provenance=explained,
            updated_at=self.clock(),
        )
        if isinstance(decision, Skip):
            return self.set_delivery(delivery, "skipped", decision.reason)
        if isinstance(decision, Reject):
            return self.set_delivery(delivery, "rejected", decision.reason)
        if not intent.auto_submit and delivery["status"] != "approved":
            return self.set_delivery(
                delivery, "pending_approval", f"{decision.summary}; waiting for approval"
            )
        outcome = await self._execute(work, delivery, intent, broker, decision, journaled)
        return await self._finish(work, delivery, outcome, decision)

    def set_delivery(
        self, delivery: dict[str, Any], status: str, reason: str, *, notify: bool = True
    ) -> Outcome:
        """Journal the delivery's outcome, and in the same transaction the notification it
        calls for (SPEC §14): a rejection or failure, a wait for approval (with the command).
        `notify=False`: the operator's own doing, told to no one."""
        with self.journal.transaction():
            self.journal.update_delivery(
                delivery["id"], status=status, reason=reason, updated_at=self.clock()
            )
            if notify:
                tell_delivery(self.notify, delivery, status, reason)
        self.metrics.deliveries.labels(str(status)).inc()
        return Outcome(status, reason)

    async def _finish(
        self, work: Work, delivery: dict[str, Any], outcome: Outcome, plan: Plan
    ) -> Outcome:
        finished = self.set_delivery(delivery, outcome.status, outcome.reason)
        if outcome.status == DeliveryStatus.SUBMITTED:
            self.metrics.submit_seconds.observe(time.monotonic() - work.handed_at)
        # The orders' own tickers too: an option contract's, a continuous future's dated one.
        tickers = dict.fromkeys([delivery["ticker"], *(o.ticker for o in plan.orders if o.ticker)])
        for ticker in tickers:
            try:  # an entry that filled at once gets its emulated bracket before the next signal
                await self.emulator.settle_brackets(delivery["account"], ticker)
            except BrokerError as e:  # retried before the ticker's next delivery
                log.error("emulated brackets of %s %s: %s", delivery["account"], ticker, e)
        return finished

    async def _execute(
        self,
        work: Work,
        delivery: dict[str, Any],
        intent: Intent,
        broker: Broker,
        plan: Plan,
        journaled: set[str],
    ) -> Outcome:
        """`journaled`: the client order ids of the delivery's orders in the journal."""
        ticker = work.signal.ticker
        account = delivery["account"]
        if plan.cancel_open_orders:
            try:
                await self.cancel_ticker(
                    account, ticker, "canceled with the open orders", broker=broker
                )
            except BrokerError as e:
                return Outcome("failed", f"cancelling open orders at {broker.name}: {e}")
        waited = False
        for step in plan.orders:
            if step.parent_leg is not None:
                continue  # a bracket child goes with its parent
            request = self._request(work, delivery, intent, step)
            # A reversal's entry after its exit's wait: a halt may have come meanwhile. One
            # journaled before a crash may be at the broker already: looked up, not refused.
            if waited and step.role is OrderRole.ENTRY and request.client_order_id not in journaled:
                why = self.planner.pretrade.refuses_entry_after_wait(
                    account, work.strategy, delivery["subscription"]
                )
                if why is not None:
                    return Outcome(
                        "submitted", f"{plan.summary}; the {step.leg} was not sent: {why}"
                    )
            children = [
                self._request(work, delivery, intent, child)
                for child in plan.orders
                if child.parent_leg == step.leg
            ]
            try:
                state = await self._submit_once(
                    work, delivery, broker, request, children, journaled, replaces=step.replaces
                )
            except OrderRejected as e:
                self.recorder.mark_orders([request, *children], OrderStatus.REJECTED, str(e))
                return Outcome("rejected", f"{broker.name} rejected the {step.leg} order: {e}")
            except BrokerError as e:  # unreachable, or refused us (credentials): unknown
                # Emulated children never left tradepipe: they stay held for the entry's fate.
                sent = [request, *children] if broker.capabilities.brackets else [request]
                self.recorder.mark_orders(sent, OrderStatus.UNKNOWN, str(e))
                return Outcome(
                    "failed",
                    f"{broker.name} did not answer for the {step.leg} order ({e}); its state is"
                    f" unknown: check the broker for client order id {request.client_order_id}",
                )
            if state.status is OrderStatus.REJECTED:
                message = state.message or "no reason given"
                return Outcome(
                    "rejected", f"{broker.name} rejected the {step.leg} order: {message}"
                )
            if state.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
                message = f": {state.message}" if state.message else ""
                return Outcome("failed", f"the {step.leg} order was {state.status}{message}")
            if (
                intent.cancel_after is not None
                and self.scheduler is not None
                and state.status in WORKING_ORDER
                and step.role in (OrderRole.ENTRY, OrderRole.EXIT)
            ):
                self.scheduler.cancel_later(delivery, request, intent)
            if step.wait_for_fill and state.status is not OrderStatus.FILLED:
                timeout = intent.exit_fill_timeout
                try:
                    state = await self._wait_for_fill(broker, request, state, timeout)
                except BrokerError as e:
                    return Outcome(
                        "failed",
                        f"lost {broker.name} while waiting for the {step.leg} order to fill"
                        f" ({e}); it stays open and no entry was sent",
                    )
                if state.status is not OrderStatus.FILLED:
                    return Outcome(
                        "failed",
                        f"the {step.leg} order was not filled within {timeout} s"
                        f" (status {state.status}); it stays open and no entry was sent",
                    )
            waited = waited or step.wait_for_fill
        return Outcome("submitted", plan.summary)

    async def _submit_once(
        self,
        work: Work,
        delivery: dict[str, Any],
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
        rows: dict[str, dict[str, Any]] = {}  # the rows journaled here, as written
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
                with self.journal.transaction():  # the entry and its children, one commit
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

    async def _wait_for_fill(
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

    def _request(
        self, work: Work, delivery: dict[str, Any], intent: Intent, step: PlannedOrder
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


def tell_delivery(notify: Notify, delivery: dict[str, Any], status: str, reason: str) -> None:
    """The notification a delivery's outcome calls for, if any (inside its transaction)."""
    where = f"{delivery['subscription']} {delivery['ticker']} (signal {delivery['signal_id']})"
    subject = f"delivery {delivery['id']}"
    if status == DeliveryStatus.PENDING_APPROVAL:
        text = (
            f"delivery {delivery['id']} {where} waits for approval: {reason}."
            f" Approve: tradepipe approve {delivery['id']}"
            f" · reject: tradepipe reject {delivery['id']}"
        )
        notify(NotifyKind.APPROVAL, subject, text)
    elif status in (DeliveryStatus.REJECTED, DeliveryStatus.FAILED):
        notify(NotifyKind.FAILURE, subject, f"delivery {delivery['id']} {where} {status}: {reason}")
