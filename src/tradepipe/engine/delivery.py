"""One delivery: a signal for one subscription, resolved, decided and carried out. Every order
is journaled with its deterministic client order id before the broker hears of it, so a restart
asks the broker instead of sending twice (engine/sending.py sends them)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from tradepipe.brokers.base import Broker
from tradepipe.core.model import (
    WORKING_ORDER,
    DeliveryStatus,
    OrderRole,
    OrderStatus,
)
from tradepipe.core.notify import Notify, NotifyKind, no_notify
from tradepipe.core.plan import Plan, Reject, Skip, plan_from_json, plan_to_json
from tradepipe.core.resolve import Intent, resolve_signal
from tradepipe.engine.bracket_emulator import BracketEmulator
from tradepipe.engine.current import Current
from tradepipe.engine.lanes import Work
from tradepipe.engine.metrics import Metrics
from tradepipe.engine.planner import Planner
from tradepipe.engine.reconciler import Reconciler
from tradepipe.engine.recorder import Recorder
from tradepipe.engine.sending import Sending
from tradepipe.errors import BrokerError, OrderRejected
from tradepipe.journal import DeliveryRow, Journal

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
        # Orders to the broker, journaled first; the ticker's open orders canceled.
        self.sending = Sending(journal, current, recorder, fill_poll_interval)
        # delay and cancel_after (SPEC §13) are journaled and armed by the scheduler.
        self.scheduler: Scheduler | None = None
        self.notify = notify
        self.metrics = metrics or Metrics()

    async def deliver(self, work: Work, delivery: DeliveryRow) -> Outcome:
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
            if delivery["status"] == DeliveryStatus.PLANNED
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
            assert delivery["plan"] is not None  # journaled with the status planned
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
        self, delivery: DeliveryRow, status: str, reason: str, *, notify: bool = True
    ) -> Outcome:
        """Journal the delivery's outcome, and in the same transaction the notification it
        calls for (SPEC §14): a rejection or failure, a wait for approval (with the command).
        `notify=False`: the operator's own doing, told to no one."""
        # One write when nothing is told: a unit by itself (journal.write_one), no savepoint.
        told = notify and DeliveryStatus(status) in TOLD
        with self.journal.transaction() if told else nullcontext():
            self.journal.update_delivery(
                delivery["id"], status=status, reason=reason, updated_at=self.clock()
            )
            if told:
                tell_delivery(self.notify, delivery, status, reason)
        self.metrics.deliveries.labels(str(status)).inc()
        return Outcome(status, reason)

    async def _finish(
        self, work: Work, delivery: DeliveryRow, outcome: Outcome, plan: Plan
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
        delivery: DeliveryRow,
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
                await self.sending.cancel_ticker(
                    account, ticker, "canceled with the open orders", broker=broker
                )
            except BrokerError as e:
                return Outcome("failed", f"cancelling open orders at {broker.name}: {e}")
        waited = False
        for step in plan.orders:
            if step.parent_leg is not None:
                continue  # a bracket child goes with its parent
            request = self.sending.request(work, delivery, intent, step)
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
                self.sending.request(work, delivery, intent, child)
                for child in plan.orders
                if child.parent_leg == step.leg
            ]
            try:
                state = await self.sending.submit_once(
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
                    state = await self.sending.wait_for_fill(broker, request, state, timeout)
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


# The outcomes a notification tells of, and its kind (tell_delivery); no other one is told.
TOLD = {
    DeliveryStatus.PENDING_APPROVAL: NotifyKind.APPROVAL,
    DeliveryStatus.REJECTED: NotifyKind.FAILURE,
    DeliveryStatus.FAILED: NotifyKind.FAILURE,
}


def tell_delivery(notify: Notify, delivery: DeliveryRow, status: str, reason: str) -> None:
    """The notification a delivery's outcome calls for, if any (inside its transaction)."""
    kind = TOLD.get(DeliveryStatus(status))
    if kind is None:
        return
    where = f"{delivery['subscription']} {delivery['ticker']} (signal {delivery['signal_id']})"
    text = f"delivery {delivery['id']} {where} {status}: {reason}"
    if kind is NotifyKind.APPROVAL:
        text = (
            f"delivery {delivery['id']} {where} waits for approval: {reason}."
            f" Approve: tradepipe approve {delivery['id']}"
            f" · reject: tradepipe reject {delivery['id']}"
        )
    notify(kind, f"delivery {delivery['id']}", text)
