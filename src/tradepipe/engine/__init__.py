"""The engine: turns journaled signals into deliveries, plans and broker orders.

The only module that sequences I/O. Signals arrive in an inbox in the order they were
acknowledged; each delivery then runs in the lane of its account + ticker, one at a time, so a
burst of alerts for one instrument cannot race (SPEC §6). Every order is journaled with its
deterministic client order id before the broker hears of it, so a restart asks the broker
instead of sending twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Literal

from tradepipe.brokers.base import Broker, canonical_ticker
from tradepipe.core import brackets
from tradepipe.core.fills import fills_to_journal
from tradepipe.core.ids import client_order_id, operator_order_id
from tradepipe.core.model import (
    OrderRequest,
    OrderRole,
    OrderState,
    OrderStatus,
    OrderType,
    Side,
)
from tradepipe.core.plan import (
    Market,
    Plan,
    PlannedOrder,
    Reject,
    RestingStop,
    Skip,
    make_plan,
    plan_from_json,
    plan_to_json,
)
from tradepipe.core.reconcile import (
    Difference,
    foreign_orders,
    orders_to_look_up,
    position_drift,
    still_open,
)
from tradepipe.core.resolve import Intent, resolve_signal
from tradepipe.core.risk import without_entries
from tradepipe.core.signal import QuantityType, Signal, parse_signal
from tradepipe.core.support import fit_to_broker, refuse_unsupported
from tradepipe.engine.drill import pause_point
from tradepipe.engine.order_poller import LOOKUPS_PER_ROUND, POLL_INTERVAL, OrderPoller
from tradepipe.errors import BrokerError, BrokerUnavailable, OrderRejected, UsageError
from tradepipe.journal import Journal

log = logging.getLogger(__name__)

FINAL_DELIVERY = frozenset({"submitted", "skipped", "rejected", "failed", "pending_approval"})
EQUITY_TYPES = frozenset({QuantityType.PERCENT_OF_EQUITY, QuantityType.RISK_PERCENT})
# How long after a lost answer "the broker does not know this id" is believed.
UNKNOWN_GRACE = timedelta(seconds=60)
STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})
REPLAY_SOURCE = "replay of signal"  # the journaled source of a `tradepipe replay --execute`


@dataclass(frozen=True, slots=True)
class Work:
    signal_id: int
    strategy: str
    signal: Signal
    # The config the signal was dispatched under: its deliveries keep it through a reload.
    config: Any = None
    # The signal's price moves the paper mark: not for an approval or a replay, whose price is
    # old news (they plan and fill at the mark of the moment).
    moves_mark: bool = True


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class LaneItem:
    work: Work
    delivery: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Chore:
    """Lane work on one account + ticker: `settle` its emulated brackets, `reconcile` it with
    the broker, or `record` what the broker's stream said of one order."""

    kind: Literal["settle", "reconcile", "record"]
    account: str
    ticker: str
    state: OrderState | None = None


@dataclass(frozen=True, slots=True)
class LaneCall:
    """Lane work an operator's command asked for; its answer goes to `done`."""

    call: Callable[[], Awaitable[Any]]
    done: asyncio.Future[Any]


LaneWork = LaneItem | Chore | LaneCall


class Engine:
    def __init__(
        self,
        config: Any,
        journal: Journal,
        brokers: Mapping[str, Broker],
        clock: Callable[[], datetime],
        *,
        fill_poll_interval: float = 0.2,
        reconnect_backoff: tuple[float, float] = (1.0, 60.0),
        stream_poll_interval: float = POLL_INTERVAL,
        stream_poll_lookups: int = LOOKUPS_PER_ROUND,
    ) -> None:
        self.config = config
        self.journal = journal
        self.brokers = brokers
        self.clock = clock
        self.fill_poll_interval = fill_poll_interval
        self._inbox: asyncio.Queue[Work] = asyncio.Queue()
        self._lanes: dict[tuple[str, str], asyncio.Queue[LaneWork]] = {}
        self._settle_due: set[tuple[str, str]] = set()
        self._settling: dict[tuple[str, str], asyncio.Lock] = {}  # one settle at a time
        # account + ticker → the position difference that blocks new entries there
        self.blocked: dict[tuple[str, str], Difference] = {}
        # account → {"ok", "checked_at", "error", "differences"} of the last reconciliation
        self.broker_health: dict[str, dict[str, Any]] = {}
        # signal id → why it waits for the next start (never silently)
        self.stalled: dict[int, str] = {}
        # account → (loop time of the next reconnection attempt, the delay that led to it)
        self.reconnect_backoff = reconnect_backoff
        self._reconnect: dict[str, tuple[float, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._remaining: dict[int, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0
        # While a broker's order stream is down, its working orders are polled over REST.
        self.order_poller = OrderPoller(
            journal,
            brokers,
            self._listener,
            clock,
            interval=stream_poll_interval,
            lookups=stream_poll_lookups,
        )

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        for account, broker in self.brokers.items():
            await self._attach(account, broker)
        for account, broker in self.brokers.items():
            try:  # orders whose answer a crash or a timeout lost: ask the broker by id
                await self._look_up_interrupted(account)
                await self.settle_unknown(account)
            except BrokerError as e:  # retried before the ticker's next delivery
                log.error("orders of unknown state at %s: %s", account, e)
            try:  # before any new signal: the journal against the broker
                await self.reconcile_account(account)
            except BrokerError as e:
                self._broker_failed(account, e)
            if not broker.capabilities.brackets:
                # Emulated brackets a stop interrupted: an entry may have filled meanwhile.
                for ticker in {c["ticker"] for c in self.journal.bracket_children(account)}:
                    try:
                        await self.settle_brackets(account, ticker)
                    except BrokerError as e:  # retried before the ticker's next delivery
                        log.error("emulated brackets of %s %s: %s", account, ticker, e)
        self._tasks.append(asyncio.create_task(self._dispatch_forever(), name="dispatch"))
        self._tasks.append(asyncio.create_task(self.order_poller.run(), name="order poller"))
        for row in self.journal.unprocessed_signals():
            parsed = parse_signal(row["payload"] or "null")
            if parsed.signal is None:  # cannot happen for an accepted row; keep it visible
                log.error("signal %s: journaled payload no longer parses", row["id"])
                continue
            log.info("resuming signal %s interrupted by a stop", row["id"])
            replayed = (row["source"] or "").startswith(REPLAY_SOURCE)
            self.enqueue(row["id"], row["strategy"], parsed.signal, moves_mark=not replayed)

    async def _attach(self, account: str, broker: Broker) -> None:
        broker.listen(self._listener(account))
        broker.on_disconnect(
            lambda why, account=account: self._broker_failed(account, BrokerUnavailable(why))
        )
        try:
            await broker.connect()
        except BrokerError as e:  # reported and retried with backoff; the rest serve on
            self._broker_failed(account, e)

    def use_config(self, config: Any, brokers: Mapping[str, Broker]) -> dict[str, Broker]:
        """SIGHUP (SPEC §11): from now on `config` for new signals and `brokers` for every
        account, swapped in one step. Deliveries already dispatched keep the config they were
        dispatched with. Answers the brokers this replaced (`connect_replaced` next)."""
        old, self.config, self.brokers = self.brokers, config, brokers
        self.order_poller.brokers = brokers  # the poller watches the accounts of now
        for account in set(old) - set(brokers):
            # Its journal rows stay (open orders included); nothing watches them any more.
            self._reconnect.pop(account, None)
            self.broker_health.pop(account, None)
            for key in [key for key in self.blocked if key[0] == account]:
                del self.blocked[key]
        return {name: broker for name, broker in old.items() if brokers.get(name) is not broker}

    async def connect_replaced(self, replaced: Mapping[str, Broker], fresh: list[str]) -> None:
        """Close the brokers a reload replaced or removed, then connect the `fresh` ones (new
        accounts, changed ones: closed first, as an IB client id takes one connection at a
        time) and reconcile each in its lanes. A failed connection is retried with backoff."""
        for account, broker in replaced.items():
            try:
                await broker.close()
            except Exception:  # the old connection's trouble must not stop the new one
                log.exception("broker %s: closing the replaced connection", account)
        for account in fresh:
            broker = self.brokers[account]
            self._reconnect.pop(account, None)
            await self._attach(account, broker)
            if account in self._reconnect:
                continue  # failed: reconnect_due retries it
            try:
                tickers = await self._tickers(account)
            except BrokerError as e:
                self._broker_failed(account, e)
                continue
            for ticker in tickers:
                self._queue_chore(Chore("reconcile", account, ticker))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for broker in self.brokers.values():
            await broker.close()

    def enqueue(
        self, signal_id: int, strategy: str, signal: Signal, *, moves_mark: bool = True
    ) -> None:
        """Hand over an acknowledged signal; returns at once (processing follows the answer)."""
        self._busy += 1
        self._idle.clear()
        self._inbox.put_nowait(Work(signal_id, strategy, signal, moves_mark=moves_mark))

    async def drain(self) -> None:
        """Wait until every enqueued signal has been processed."""
        await self._idle.wait()

    # -- sequencing ----------------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while True:
            work = await self._inbox.get()
            await pause_point("dispatch")
            try:
                self._dispatch(work)
            except Exception as e:  # kept 'accepted' for the next start; reported until then
                log.exception("signal %s: dispatch failed", work.signal_id)
                self.stalled[work.signal_id] = f"could not be dispatched: {e}"
                self._done()
            finally:
                self._inbox.task_done()

    def _dispatch(self, work: Work) -> None:
        work = replace(work, config=self.config)
        subscriptions = work.config.subscriptions_for(work.strategy)
        if not subscriptions:
            log.warning(
                "signal %s: strategy %s has no enabled subscription", work.signal_id, work.strategy
            )
        now = self.clock()
        # Each delivery names the instrument as its account's broker does (SPEC §6: one
        # position per account + instrument, however the alert spelled it); the signal row
        # keeps the text that came in.
        works = [self._for_account(work, s.account) for _, s in subscriptions]
        # Every delivery is journaled before any is queued, in one commit (not one fsync per
        # subscription): if journaling fails, nothing runs, the signal stays 'accepted' and the
        # next start dispatches it again.
        with self.journal.transaction():
            deliveries = [
                self.journal.ensure_delivery(
                    signal_id=work.signal_id,
                    subscription=name,
                    account=subscription.account,
                    ticker=ours.signal.ticker,
                    status="queued",
                    created_at=now,
                    updated_at=now,
                )
                for (name, subscription), ours in zip(subscriptions, works, strict=True)
            ]
        self._remaining[work.signal_id] = len(deliveries)
        for delivery, ours in zip(deliveries, works, strict=True):
            self._lane(delivery["account"], delivery["ticker"]).put_nowait(LaneItem(ours, delivery))
        if not subscriptions:
            self._finish_signal(work.signal_id)

    def _canonical(self, account: str, ticker: str) -> str:
        broker = self.brokers.get(account)
        return ticker if broker is None else canonical_ticker(broker, ticker)

    def _for_account(self, work: Work, account: str) -> Work:
        """The work with the signal's ticker as the account's broker spells the instrument."""
        ticker = self._canonical(account, work.signal.ticker)
        if ticker == work.signal.ticker:
            return work
        return replace(work, signal=replace(work.signal, ticker=ticker))

    def _lane(self, account: str, ticker: str) -> asyncio.Queue[LaneWork]:
        # One lane per instrument: a journal row or a stream event under another spelling of it
        # (written before tickers were canonical) queues behind the same work.
        key = (account, self._canonical(account, ticker))
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = asyncio.Queue()
            self._tasks.append(asyncio.create_task(self._run_lane(lane), name=f"lane {key}"))
        return lane

    async def _run_lane(self, lane: asyncio.Queue[LaneWork]) -> None:
        while True:
            item = await lane.get()
            if isinstance(item, LaneCall):
                await self._call_in_lane(item)
                continue
            if isinstance(item, Chore):
                await self._do_chore(item)
                continue
            work, delivery = item.work, item.delivery
            try:
                if delivery["status"] not in FINAL_DELIVERY:
                    outcome = await self._deliver(work, delivery)
                    log.info(
                        "signal %s → %s: %s (%s)",
                        work.signal_id,
                        delivery["subscription"],
                        outcome.status,
                        outcome.reason,
                    )
            # (Stopped mid-delivery, SIGTERM past its grace, CancelledError passes through and
            # skips the count-down: the signal stays 'accepted' and the next start resumes it.)
            except Exception as e:  # a bug must not stop the lane; journal it, carry on
                log.exception("signal %s: delivery %s failed", work.signal_id, delivery["id"])
                try:
                    self._set_delivery(delivery["id"], "failed", f"internal error: {e!r}")
                except Exception:
                    log.exception("delivery %s: could not journal the failure", delivery["id"])
            self._count_down(work.signal_id)

    def _count_down(self, signal_id: int) -> None:
        """One delivery of the signal is done; the last one marks the signal processed."""
        self._remaining[signal_id] -= 1
        if self._remaining[signal_id] == 0:
            try:
                self._finish_signal(signal_id)
            except Exception:
                # Left 'accepted' in the journal: the next start processes it again,
                # and its journaled plan keeps that from sending anything twice.
                log.exception("signal %s: could not be marked processed", signal_id)
                self._remaining.pop(signal_id, None)
                self._done()

    # -- manual approval -----------------------------------------------------------------------

    async def review(self, delivery_id: int, *, approve: bool) -> dict[str, Any]:
        """An operator's answer to a delivery that waits for approval (`auto_submit = false`).

        Approval plans again against the position at that moment, in the delivery's own lane
        (so it cannot race newer signals), and reports how the plan changed since the signal.
        """
        delivery = self._pending(delivery_id)
        self.journal.record_operator_action(
            "approve" if approve else "reject", f"delivery {delivery_id}", self.clock()
        )
        if not approve:
            outcome = self._set_delivery(delivery_id, "rejected", "rejected by the operator")
            return {"delivery_id": delivery_id, "status": outcome.status, "reason": outcome.reason}
        row = self.journal.signal(delivery["signal_id"])
        assert row is not None
        signal = parse_signal(row["payload"]).signal
        assert signal is not None
        # At the mark of this moment: the signal's price moved the mark when it came in.
        work = Work(row["id"], row["strategy"], signal, moves_mark=False)
        work = self._for_account(work, delivery["account"])
        return await self.in_lane(
            delivery["account"], delivery["ticker"], partial(self._approve, work, delivery_id)
        )

    def _pending(self, delivery_id: int) -> dict[str, Any]:
        delivery = self.journal.delivery(delivery_id)
        if delivery is None:
            raise UsageError(f"no delivery {delivery_id} in the journal")
        if delivery["status"] != "pending_approval":
            raise UsageError(
                f"delivery {delivery_id} is {delivery['status']}, not waiting for approval"
            )
        return delivery

    async def _approve(self, work: Work, delivery_id: int) -> dict[str, Any]:
        delivery = self._pending(delivery_id)  # again: another approval may have won
        before = json.loads(delivery["plan"]).get("summary") if delivery["plan"] else None
        outcome = await self._deliver(work, {**delivery, "status": "approved"})
        after = self.journal.delivery(delivery_id)
        assert after is not None
        now = json.loads(after["plan"]) if after["plan"] else {}
        now_summary = now.get("summary") or now.get("reason")
        return {
            "delivery_id": delivery_id,
            "status": outcome.status,
            "reason": outcome.reason,
            "plan_at_signal": before,
            "plan_now": now_summary,
            "changed": before != now_summary,
        }

    def _listener(self, account: str) -> Callable[[OrderState], None]:
        """What a broker's stream reports is journaled in the ticker's lane, after the work
        queued there, so it never lands between a delivery's planning and its orders."""

        def heard(state: OrderState) -> None:
            ticker = state.ticker
            if ticker is None:
                journaled = self.journal.order_by_client_id(state.client_order_id)
                if journaled is None:
                    return  # not ours: reconciliation reports such orders
                ticker = journaled["ticker"]
            self._queue_chore(Chore("record", account, ticker, state))

        return heard

    async def _do_chore(self, chore: Chore) -> None:
        try:
            if chore.kind == "record":
                assert chore.state is not None
                self.record_state(chore.account, chore.ticker, chore.state, streamed=True)
            elif chore.kind == "reconcile":
                await self.reconcile(chore.account, chore.ticker)
            else:
                self._settle_due.discard((chore.account, chore.ticker))
                await self.settle_brackets(chore.account, chore.ticker)
        except BrokerError as e:  # journaled states stay; the next chore or start retries
            self._broker_failed(chore.account, e)
        except Exception:
            log.exception("%s of %s %s", chore.kind, chore.account, chore.ticker)
        finally:
            self._done()

    def _finish_signal(self, signal_id: int) -> None:
        self._remaining.pop(signal_id, None)
        self.journal.mark_signal_processed(signal_id, self.clock())
        self._done()

    def _done(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._idle.set()

    # -- one delivery --------------------------------------------------------------------------

    async def _deliver(self, work: Work, delivery: dict[str, Any]) -> Outcome:
        config = work.config if work.config is not None else self.config
        subscription = config.subscriptions[delivery["subscription"]]
        strategy = config.strategies[work.strategy]
        broker = self.brokers.get(subscription.account)
        if broker is None:
            why = f'account "{subscription.account}" was removed from the config by a reload'
            return self._set_delivery(delivery["id"], "failed", f"{why}; nothing sent")
        signal = work.signal
        intent = resolve_signal(signal, subscription, strategy.defaults)
        resuming = delivery["status"] == "planned" and bool(
            self.journal.orders_for_deliveries([delivery["id"]])
        )
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
                    return self._set_delivery(delivery["id"], "rejected", why)
                for state in moved:
                    self.record_state(subscription.account, signal.ticker, state)
            # What earlier deliveries left unsettled is settled before this one is planned:
            # orders whose answer was lost, and an entry that filled since (or at this very
            # mark) gets its emulated take-profit / stop-loss.
            await self.settle_unknown(subscription.account, signal.ticker)
            await self.settle_brackets(subscription.account, signal.ticker)
            decision = None if resuming else await self._decide(intent, subscription.account)
        except BrokerError as e:
            return self._set_delivery(delivery["id"], "failed", f"broker {broker.name}: {e}")
        if decision is None:
            # A stop interrupted this delivery while it was sending (orders are journaled before
            # the broker hears of them): carry out the journaled plan, each leg settled by its
            # client order id, rather than plan against a position its own orders changed.
            # Its cancels ran before its first order; again, they would cancel those orders.
            # Without journaled orders nothing was sent: planning again is safe, and it goes
            # through the approval gate below like any new delivery.
            log.info("delivery %s: resuming its journaled plan", delivery["id"])
            plan = replace(plan_from_json(json.loads(delivery["plan"])), cancel_open_orders=False)
            outcome = await self._execute(work, delivery, intent, broker, plan)
            return await self._finish_delivery(delivery, outcome)
        explained = intent.explain(delivery["subscription"], work.strategy)
        self.journal.update_delivery(
            delivery["id"],
            status="planned",
            plan=plan_to_json(decision),
            provenance=explained,
            updated_at=self.clock(),
        )
        if isinstance(decision, Skip):
            return self._set_delivery(delivery["id"], "skipped", decision.reason)
        if isinstance(decision, Reject):
            return self._set_delivery(delivery["id"], "rejected", decision.reason)
        if not intent.auto_submit and delivery["status"] != "approved":
            return self._set_delivery(
                delivery["id"], "pending_approval", f"{decision.summary}; waiting for approval"
            )
        outcome = await self._execute(work, delivery, intent, broker, decision)
        return await self._finish_delivery(delivery, outcome)

    async def _decide(self, intent: Intent, account: str) -> Plan | Skip | Reject:
        """Plan against what the broker says now (reads only), then apply any block."""
        broker = self.brokers[account]
        refused = refuse_unsupported(intent, account, broker.capabilities)
        if refused is not None:
            return refused
        ticker = intent.ticker
        position = await broker.position(ticker)
        quote = await broker.quote(ticker) if broker.capabilities.quotes else None
        open_orders = await broker.open_orders(ticker)
        equity = None
        if intent.quantity_type in EQUITY_TYPES:
            equity = (await broker.account()).equity
        rules = await broker.instrument(ticker)
        lot_size = rules.lot_size or broker.capabilities.lot_size
        market = Market(
            position=position.quantity,
            average_price=position.average_price,
            reference_price=quote or intent.signal_price,
            equity=equity,
            has_open_orders=bool(open_orders) or self._holds_children(account, ticker),
            lot_size=lot_size if intent.fractional else max(lot_size, Decimal(1)),
            tick_size=rules.tick_size,
            now=self.clock(),
            stops=_resting_stops(open_orders),
            allow_leverage=self.config.accounts[account].allow_leverage,
            multiplier=rules.multiplier,
            kind=rules.kind,
        )
        decision = fit_to_broker(make_plan(intent, market), intent, account, broker.capabilities)
        difference = self.blocked.get((account, ticker))
        if difference is not None and isinstance(decision, Plan):
            why = (
                f"new entries on {ticker} are blocked until the journal and the broker"
                f" agree: {difference.describe()} (block_entries_on_mismatch)"
            )
            decision = without_entries(decision, why)
        return decision

    async def preview(self, signal_id: int) -> list[dict[str, Any]]:
        """What the signal would do now, per enabled subscription: a dry run that journals
        nothing and moves no mark (`tradepipe replay ID`)."""
        row = self.journal.signal(signal_id)
        if row is None or not row["payload"]:
            raise UsageError(f"no accepted signal {signal_id} in the journal")
        signal = _journaled_signal(signal_id, row["payload"])
        strategy = self.config.strategies[row["strategy"]]
        answers = []
        for name, subscription in self.config.subscriptions_for(row["strategy"]):
            ticker = self._canonical(subscription.account, signal.ticker)
            intent = resolve_signal(replace(signal, ticker=ticker), subscription, strategy.defaults)
            try:
                decision = await self._decide(intent, subscription.account)
            except BrokerError as e:
                decision = Reject(f"broker {subscription.account}: {e}")
            answers.append(
                {"subscription": name, "account": subscription.account, **plan_to_json(decision)}
            )
        return answers

    def replay(self, signal_id: int) -> int:
        """Send a journaled signal again, as a new signal (fresh client order ids) that goes
        through planning, approval and the audit trail like any other. Returns its id."""
        row = self.journal.signal(signal_id)
        if row is None or not row["payload"]:
            raise UsageError(f"no accepted signal {signal_id} in the journal")
        signal = _journaled_signal(signal_id, row["payload"])
        now = self.clock()
        self.journal.record_operator_action("replay", f"signal {signal_id}", now)
        new_id = self.journal.record_signal(
            strategy=row["strategy"],
            received_at=now,
            source=f"{REPLAY_SOURCE} {signal_id}",
            body=row["body"],
            payload=row["payload"],
            ticker=row["ticker"],
            action=row["action"],
            status="accepted",
            http_status=200,
        )
        self.enqueue(new_id, row["strategy"], signal, moves_mark=False)
        return new_id

    async def _finish_delivery(self, delivery: dict[str, Any], outcome: Outcome) -> Outcome:
        finished = self._set_delivery(delivery["id"], outcome.status, outcome.reason)
        try:  # an entry that filled at once gets its emulated bracket before the next signal
            await self.settle_brackets(delivery["account"], delivery["ticker"])
        except BrokerError as e:  # retried before the ticker's next delivery
            log.error("emulated brackets of %s %s: %s", delivery["account"], delivery["ticker"], e)
        return finished

    def _holds_children(self, account: str, ticker: str) -> bool:
        return any(
            c["status"] == OrderStatus.HELD for c in self.journal.bracket_children(account, ticker)
        )

    async def _execute(
        self, work: Work, delivery: dict[str, Any], intent: Intent, broker: Broker, plan: Plan
    ) -> Outcome:
        ticker = work.signal.ticker
        account = delivery["account"]
        if plan.cancel_open_orders:
            try:
                await self._cancel_ticker(account, ticker, "canceled with the open orders")
            except BrokerError as e:
                return Outcome("failed", f"cancelling open orders at {broker.name}: {e}")
        for step in plan.orders:
            if step.parent_leg is not None:
                continue  # a bracket child goes with its parent
            request = self._request(work, delivery, intent, step)
            children = [
                self._request(work, delivery, intent, child)
                for child in plan.orders
                if child.parent_leg == step.leg
            ]
            try:
                state = await self._submit_once(
                    work, delivery, broker, request, children, replaces=step.replaces
                )
            except OrderRejected as e:
                self._mark_orders([request, *children], OrderStatus.REJECTED, str(e))
                return Outcome("rejected", f"{broker.name} rejected the {step.leg} order: {e}")
            except BrokerError as e:  # unreachable, or refused us (credentials): unknown
                # Emulated children never left tradepipe: they stay held for the entry's fate.
                sent = [request, *children] if broker.capabilities.brackets else [request]
                self._mark_orders(sent, OrderStatus.UNKNOWN, str(e))
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
        return Outcome("submitted", plan.summary)

    async def _submit_once(
        self,
        work: Work,
        delivery: dict[str, Any],
        broker: Broker,
        request: OrderRequest,
        children: list[OrderRequest],
        *,
        replaces: str | None = None,
    ) -> OrderState:
        """Send an order (with its bracket children, or in the place of a working order) unless
        the journal shows it was sent before; then ask the broker about it instead of sending it
        again."""
        journaled = self.journal.order_by_client_id(request.client_order_id)
        found = None
        if journaled is not None:
            found = await broker.get_order(request.client_order_id, ticker=request.ticker)
        if found is not None:
            states = [found]
            for child in children:
                child_state = await broker.get_order(child.client_order_id, ticker=child.ticker)
                if child_state is not None:
                    states.append(child_state)
        else:
            if journaled is None:
                with self.journal.transaction():  # the entry and its children, one commit
                    # A replacement inherits the replaced order's place in its bracket.
                    replaced = replaces and self.journal.order_by_client_id(replaces)
                    inherited = replaced["parent_id"] if replaced else None
                    parent_id = self._journal_order(
                        work, delivery, request, inherited, replaces=replaces
                    )
                    # Without native brackets the children wait here for the entry's fill.
                    held = None if broker.capabilities.brackets else OrderStatus.HELD
                    for child in children:
                        self._journal_order(work, delivery, child, parent_id, held)
            # Write-ahead: the order is on disk before the broker hears of it, so that a
            # restart can always ask the broker about it (tradepipe.journal.group_commit).
            await self.journal.durable()
            await pause_point("submit")
            if replaces is not None:
                states = [await broker.replace(replaces, request)]
            elif children and broker.capabilities.brackets:
                states = await broker.submit_bracket(request, children)
            else:
                states = [await broker.submit(request)]
            await pause_point("answer")
        # As journaled: read against what was sent (fills covering it mean filled).
        states = [self.record_state(request.account, request.ticker, state) for state in states]
        if replaces is not None:
            try:  # the replaced order's end, for the journal; the broker has it either way
                old = await broker.get_order(replaces, ticker=request.ticker)
            except BrokerError as e:
                log.warning("order %s, replaced: its state is not known yet: %s", replaces, e)
                old = None
            if old is not None:
                self.record_state(request.account, request.ticker, old)
        return states[0]

    def _mark_orders(self, requests: list[OrderRequest], status: OrderStatus, message: str) -> None:
        """The broker's answer to a whole bracket (or one order) that failed as one call."""
        with self.journal.transaction():
            for request in requests:
                self.journal.update_order(
                    request.client_order_id,
                    status=status,
                    broker_message=message,
                    updated_at=self.clock(),
                )

    def _journal_order(
        self,
        work: Work | None,
        delivery: dict[str, Any] | None,
        request: OrderRequest,
        parent_id: int | None = None,
        status: OrderStatus | None = None,
        *,
        replaces: str | None = None,
    ) -> int:
        """Journal an order before the broker hears of it (an operator's has no delivery)."""
        now = self.clock()
        return self.journal.insert_order(
            client_order_id=request.client_order_id,
            delivery_id=delivery["id"] if delivery else None,
            signal_id=work.signal_id if work else None,
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
                state = self.record_state(request.account, request.ticker, found)
        return state

    # -- journaling ----------------------------------------------------------------------------

    def _request(
        self, work: Work, delivery: dict[str, Any], intent: Intent, step: PlannedOrder
    ) -> OrderRequest:
        return OrderRequest(
            client_order_id=client_order_id(
                self.journal.instance, work.signal_id, delivery["subscription"], step.leg
            ),
            account=delivery["account"],
            ticker=work.signal.ticker,
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

    def record_state(
        self, account: str, ticker: str, state: OrderState, *, streamed: bool = False
    ) -> OrderState:
        """Journal what the broker says of one of our orders, and every fill it reports;
        answers the state as journaled: read against the quantity sent (fills covering it
        mean filled, whatever a broker that forgot the order says). A `streamed` event may
        arrive after a poll already journaled a later state: it never moves an order back
        from final, nor its filled quantity down."""
        journaled = self.journal.order_by_client_id(state.client_order_id)
        if journaled is None:
            return state  # not ours: reconciliation reports such orders
        state = state.against(Decimal(journaled["quantity"]))
        if streamed and (
            (OrderStatus(journaled["status"]).is_final and not state.status.is_final)
            or state.filled_quantity < Decimal(journaled["filled_quantity"])
        ):
            return state
        if (
            journaled["status"] == state.status
            and Decimal(journaled["filled_quantity"]) == state.filled_quantity
            and journaled["broker_order_id"] == state.broker_order_id
            and journaled["broker_message"] == state.message
        ):
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
                        self.journal.order_fills(journaled["id"]),
                        Side(journaled["side"]),
                        ticker,
                        self.clock(),
                    )
                )
            for fill in fills:
                self.journal.record_fill(
                    fill_id=f"{account}:{fill.fill_id}",
                    order_id=journaled["id"],
                    account=account,
                    ticker=ticker,
                    side=fill.side,
                    quantity=fill.quantity,
                    price=fill.price,
                    filled_at=fill.filled_at,
                )

        broker = self.brokers.get(account)
        if (
            broker is not None
            and not broker.capabilities.brackets
            and (state.status.is_final or brackets.fills_a_child(journaled, state.filled_quantity))
        ):
            self._schedule_settle(account, ticker)
        return state

    # -- flatten -------------------------------------------------------------------------------

    async def flatten(
        self, account: str | None = None, ticker: str | None = None
    ) -> list[dict[str, Any]]:
        """Cancel the open orders, then close the position, of every account + ticker in the
        scope; each in its lane, after the work queued there. Answers what was done."""
        if account is not None and account not in self.brokers:
            raise UsageError(f'no account "{account}" (accounts: {", ".join(self.brokers)})')
        action = self.journal.record_operator_action(
            "flatten", f"{account or 'every account'} {ticker or 'every ticker'}", self.clock()
        )
        results = []
        for name in [account] if account else list(self.brokers):
            broker = self.brokers[name]
            tickers = {p.ticker for p in await broker.positions() if p.quantity}
            tickers |= {o.ticker for o in await broker.open_orders() if o.ticker}
            tickers |= {c["ticker"] for c in self.journal.bracket_children(name)}
            # One instrument, one close: a journal row under an older spelling is the same one
            # (two closes, each for the whole position, would sell it twice).
            tickers = {self._canonical(name, t) for t in tickers}
            wanted = None if ticker is None else self._canonical(name, ticker)
            for symbol in sorted(t for t in tickers if wanted in (None, t)):

                async def close(name: str = name, symbol: str = symbol) -> dict[str, Any]:
                    return await self._flatten_one(name, symbol, action)

                results.append(await self.in_lane(name, symbol, close))
        return results

    async def _cancel_ticker(
        self, account: str, ticker: str, why: str, *, leave_ours: bool = False
    ) -> tuple[list[str], list[str]]:
        """Cancel the ticker's open orders at the broker, and the emulated bracket legs only
        tradepipe holds; answers their ids, and those the broker would not cancel with its
        reason. An order tradepipe did not place (typed into TWS by hand) that the broker will
        not let us cancel stays working, reported, never fatal: it must not block every signal
        of the ticker. One of our own that will not cancel (placed under another IB client id,
        or an exchange that refuses) raises, so no new order joins it, unless `leave_ours`
        (flatten: the operator asked to close, and is shown what is left)."""
        broker = self.brokers[account]
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
                self.record_state(account, ticker, state)
            canceled.append(order.client_order_id)
        for child in self.journal.bracket_children(account, ticker):
            if child["status"] == OrderStatus.HELD:
                self._journal_status(child, OrderStatus.CANCELED, why)
                canceled.append(child["client_order_id"])
        return canceled, left

    async def _call_in_lane(self, item: LaneCall) -> None:
        """An operator's step; its answer goes to whoever still waits (a caller that gave up
        must not stop the lane: the signals queued behind it would wait for the next start)."""
        try:
            result = await item.call()
        except Exception as e:  # the operator sees it; the lane goes on
            if not item.done.done():
                item.done.set_exception(e)
        else:
            if not item.done.done():
                item.done.set_result(result)

    async def in_lane(self, account: str, ticker: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run an operator's step in the account + ticker's lane, after the signals queued
        there, so it never lands between a delivery's planning and its orders."""
        await self._inbox.join()  # signals acknowledged before now reach their lanes first
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._lane(account, ticker).put_nowait(LaneCall(call, done))
        return await done

    async def _flatten_one(self, account: str, ticker: str, action: int) -> dict[str, Any]:
        broker = self.brokers[account]
        canceled, left = await self._cancel_ticker(
            account, ticker, "canceled by flatten", leave_ours=True
        )
        result: dict[str, Any] = {"account": account, "ticker": ticker, "canceled": canceled}
        result["left_working"] = left
        held = (await broker.position(ticker)).quantity
        if held == 0:
            return result | {"closed": None}
        request = OrderRequest(
            client_order_id=operator_order_id(self.journal.instance, action, account, ticker),
            account=account,
            ticker=ticker,
            side=Side.SELL if held > 0 else Side.BUY,
            quantity=abs(held),
            role=OrderRole.EXIT,
        )
        self._journal_order(None, None, request)
        state = await self._send(broker, request)
        closed = {
            "client_order_id": request.client_order_id,
            "side": str(request.side),
            "quantity": str(request.quantity),
            "status": str(state.status),
            "message": state.message,
        }
        return result | {"closed": closed}

    # -- reconciliation (SPEC §11) ------------------------------------------------------------

    async def reconcile_account(self, account: str) -> list[Difference]:
        """Every ticker the journal or the broker has anything on, one after the other."""
        differences: list[Difference] = []
        for ticker in await self._tickers(account):
            differences += await self.reconcile(account, ticker)
        return differences

    async def reconcile_everything(self) -> None:
        """The periodic check: each account + ticker in its own lane, after the work queued
        there, so none of our own deliveries is caught half-way."""
        for account in self.brokers:
            try:
                tickers = await self._tickers(account)
            except BrokerError as e:
                self._broker_failed(account, e)
                continue
            for ticker in tickers:
                self._queue_chore(Chore("reconcile", account, ticker))

    async def _tickers(self, account: str) -> list[str]:
        """Every instrument the journal or the broker has anything on, each once, canonical."""
        broker = self.brokers[account]
        tickers = {p["ticker"] for p in self.journal.positions(account=account)}
        tickers |= {o["ticker"] for o in self.journal.working_orders(account)}
        tickers |= {p.ticker for p in await broker.positions() if p.quantity}
        tickers |= {o.ticker for o in await broker.open_orders() if o.ticker}
        health = self.broker_health.setdefault(account, {"differences": []})
        health.update(ok=True, error=None, checked_at=self.clock().isoformat())
        return sorted({self._canonical(account, ticker) for ticker in tickers})

    async def reconcile(self, account: str, ticker: str) -> list[Difference]:
        """Compare one account + ticker with the broker; journal and report every difference.
        Orders the journal was behind on are brought up to date from the broker's answer; a
        position that still differs blocks new entries on the ticker (if configured).

        Canonical against canonical: journal rows written under another spelling of the
        instrument (before tickers were canonical) are read as the instrument's, not rewritten.
        """
        broker = self.brokers[account]
        ticker = self._canonical(account, ticker)
        now = self.clock()
        differences: list[Difference] = []
        broker_open = await broker.open_orders(ticker)
        working = [
            o
            for o in self.journal.working_orders(account)
            if self._canonical(account, o["ticker"]) == ticker
        ]
        was = {o["client_order_id"]: o["status"] for o in working}
        for cid in orders_to_look_up(working, broker_open):
            found = await broker.get_order(cid, ticker=ticker)
            if found is None:
                # The broker does not know it: settled as unknown, by lookup, after a grace.
                self._journal_status(
                    {"client_order_id": cid},
                    OrderStatus.UNKNOWN,
                    "the broker no longer lists this order (reconciliation)",
                )
                seen = "not found"
            else:
                self.record_state(account, ticker, found)
                seen = str(found.status)
            differences.append(Difference("order", account, ticker, cid, was[cid], seen))
        journaled = {
            o.client_order_id: row
            for o in broker_open
            if (row := self.journal.order_by_client_id(o.client_order_id)) is not None
        }
        differences += foreign_orders(account, ticker, broker_open, journaled)
        differences += still_open(account, ticker, broker_open, journaled)
        held = sum(
            (
                Decimal(p["quantity"])
                for p in self.journal.positions(account=account)
                if self._canonical(account, p["ticker"]) == ticker
            ),
            Decimal(0),
        )
        at_broker = (await broker.position(ticker)).quantity
        drift = position_drift(account, ticker, held, at_broker)
        differences += drift
        for difference in differences:
            log.warning("reconciliation: %s", difference.describe())
            self.journal.record_reconciliation(
                f"{account} {ticker}",
                now,
                kind=difference.kind,
                about=difference.subject,
                journal=difference.journal,
                broker=difference.broker,
            )
        key = (account, ticker)
        if drift and self.config.reconciliation.block_entries_on_mismatch:
            self.blocked[key] = drift[0]
        elif self.blocked.pop(key, None) is not None:
            log.info("reconciliation: %s %s agrees again; entries unblocked", account, ticker)
        health = self.broker_health.setdefault(account, {"differences": []})
        health.update(ok=True, error=None, checked_at=now.isoformat())
        others = [d for d in health["differences"] if d["ticker"] != ticker]
        health["differences"] = others + [
            {"ticker": ticker, "difference": d.describe(), "blocks_entries": d.blocks_entries}
            for d in differences
        ]
        return differences

    def health(self) -> dict[str, Any]:
        """What /healthz and `tradepipe status` report: each broker's last check (`state`: ok,
        degraded when REST answers but its order stream is down, down), the blocks."""
        brokers = {name: dict(detail) for name, detail in self.broker_health.items()}
        for name, stream in self.order_poller.health().items():
            brokers.setdefault(name, {})["stream"] = stream
        for detail in brokers.values():
            stream_down = not detail.get("stream", {}).get("up", True)
            ok = detail.get("ok", True)
            detail["state"] = "down" if not ok else "degraded" if stream_down else "ok"
        degraded = (
            any(b["state"] != "ok" for b in brokers.values())
            or bool(self.blocked)
            or bool(self.stalled)
        )
        return {
            "status": "degraded" if degraded else "ready",
            "brokers": brokers,
            "stalled_signals": [
                {"signal_id": signal_id, "reason": why} for signal_id, why in self.stalled.items()
            ],
            "blocked": [
                {"account": a, "ticker": t, "reason": d.describe()}
                for (a, t), d in sorted(self.blocked.items())
            ],
        }

    def _broker_failed(self, account: str, error: BrokerError) -> None:
        log.error("broker %s: %s", account, error)
        health = self.broker_health.setdefault(account, {"differences": []})
        health.update(ok=False, error=str(error), checked_at=self.clock().isoformat())
        first, longest = self.reconnect_backoff
        _, delay = self._reconnect.get(account, (0.0, first / 2))
        delay = min(delay * 2, longest)  # 1, 2, 4 … 60 s
        self._reconnect[account] = (asyncio.get_running_loop().time() + delay, delay)

    async def reconnect_due(self) -> None:
        """Reconnect the brokers whose backoff has run out; a success reconciles them at once
        (what happened while they were away), a failure doubles the wait."""
        now = asyncio.get_running_loop().time()
        for account, (due, _) in list(self._reconnect.items()):
            if due > now:
                continue
            try:
                await self.brokers[account].connect()
                tickers = await self._tickers(account)  # also proves the link works
            except BrokerError as e:
                self._broker_failed(account, e)
                continue
            log.info("broker %s: reconnected", account)
            del self._reconnect[account]
            for ticker in tickers:
                self._queue_chore(Chore("reconcile", account, ticker))

    # -- settling by lookup (SPEC §8) ---------------------------------------------------------

    async def _look_up_interrupted(self, account: str) -> None:
        """Before reconciling at start: what the broker did with the orders a stop caught
        between journaling and the answer. Their fills must be in the journal first, or the
        position they moved looks like drift. Not found: their delivery, resumed, sends them;
        an operator's order has no delivery, so its fate becomes unknown, settled by lookup."""
        broker = self.brokers[account]
        for order in self.journal.submitting_orders(account):
            found = await broker.get_order(order["client_order_id"], ticker=order["ticker"])
            if found is not None:
                self.record_state(account, order["ticker"], found)
            elif order["delivery_id"] is None:
                why = "a stop came between journaling and sending (flatten)"
                self._journal_status(order, OrderStatus.UNKNOWN, why)

    async def settle_unknown(self, account: str, ticker: str | None = None) -> None:
        """An order whose answer was lost (timeout, dropped connection, crash) is never sent
        again blindly: the broker is asked about its client order id. Found: its state is
        journaled. Not found: it never reached the broker, and is journaled as not sent."""
        broker = self.brokers[account]
        for order in self.journal.unknown_orders(account, ticker):
            found = await broker.get_order(order["client_order_id"], ticker=order["ticker"])
            if found is not None:
                log.info("order %s settled by lookup: %s", order["client_order_id"], found.status)
                self.record_state(account, order["ticker"], found)
            elif self.clock() - datetime.fromisoformat(order["updated_at"]) < UNKNOWN_GRACE:
                continue  # a broker may list an order a moment after it took it: ask again later
            else:
                why = "never reached the broker (looked up by its id after the answer was lost)"
                log.warning("order %s %s", order["client_order_id"], why)
                self._journal_status(order, OrderStatus.CANCELED, why)

    # -- emulated brackets (SPEC §8) -------------------------------------------------------------

    def _schedule_settle(self, account: str, ticker: str) -> None:
        """Settle the ticker's emulated brackets in its lane, after the work queued before."""
        if (account, ticker) in self._settle_due:
            return
        self._settle_due.add((account, ticker))
        self._queue_chore(Chore("settle", account, ticker))

    def _queue_chore(self, chore: Chore) -> None:
        self._busy += 1  # drain() waits for it like for a signal
        self._idle.clear()
        self._lane(chore.account, chore.ticker).put_nowait(chore)

    async def settle_brackets(self, account: str, ticker: str) -> None:
        """For a broker without native brackets, do what an OTOCO bracket does: place the
        take-profit / stop-loss once their entry has filled (for the quantity filled), drop them
        if it never will, keep each to what the position still holds when the other fills in
        part (resized), and cancel the survivor when one of them fills. Driven by the journal
        alone (tradepipe.core.brackets decides), so it is safe to run again at any time, and at
        start."""
        broker = self.brokers[account]
        if broker.capabilities.brackets:
            return
        # At start this runs outside the lanes, while what it journals already schedules
        # settle chores in them: one round at a time, each reading the journal afresh.
        async with self._settling.setdefault((account, ticker), asyncio.Lock()):
            children = self.journal.bracket_children(account, ticker)
            # A lost answer first (a breakeven's move, a resized leg): until it is known, a
            # child may already have been replaced, and must be neither resized nor re-placed.
            # (Only the children's: settle_unknown, before each delivery, has the rest.)
            for child in children:
                if child["status"] == OrderStatus.UNKNOWN:
                    await self._look_up_row(broker, child)
            for child in children:
                await self._settle_child(broker, child["id"])

    async def _settle_child(self, broker: Broker, child_id: int) -> None:
        child = self.journal.order_by_id(child_id)  # again: this round may have settled it
        assert child is not None
        if child["status"] not in brackets.LIVE:
            return
        entry = self.journal.order_by_id(child["parent_id"])
        assert entry is not None
        unsent = child["status"] in (OrderStatus.HELD, OrderStatus.SUBMITTING)
        if unsent and entry["status"] in (OrderStatus.UNKNOWN, OrderStatus.SUBMITTING):
            # The entry's answer was lost: its fate decides the children, so ask.
            entry = await self._look_up_row(broker, entry)
        if child["status"] == OrderStatus.SUBMITTING:
            # Sent before a stop interrupted us: ask before sending again.
            child = await self._look_up_row(broker, child)
        held = self.journal.position(child["account"], child["ticker"])
        position = held[0] if held else Decimal(0)
        closable = position if child["side"] == Side.SELL else -position
        step = brackets.next_step(entry, child, self.journal.siblings(child), closable=closable)
        if isinstance(step, brackets.Drop):
            self._journal_status(child, OrderStatus.CANCELED, step.why)
        elif isinstance(step, brackets.Cancel):
            await self._cancel_child(broker, child, step.why)
        elif isinstance(step, brackets.Place):
            await self._place_child(broker, child, step.quantity)
        elif isinstance(step, brackets.Resize):
            await self._resize_child(broker, child, step)

    async def _look_up_row(self, broker: Broker, order: dict[str, Any]) -> dict[str, Any]:
        """The broker's view of a journaled order, journaled; answers the row as it is now."""
        found = await broker.get_order(order["client_order_id"], ticker=order["ticker"])
        if found is None:
            return order
        self.record_state(order["account"], order["ticker"], found)
        row = self.journal.order_by_id(order["id"])
        assert row is not None
        return row

    async def _place_child(self, broker: Broker, child: dict[str, Any], quantity: Decimal) -> None:
        request = OrderRequest.from_row(child, quantity=quantity)
        self.journal.update_order(
            child["client_order_id"],
            status=OrderStatus.SUBMITTING,
            quantity=quantity,
            updated_at=self.clock(),
        )
        try:
            await self._send(broker, request)
        except OrderRejected as e:
            log.error("%s: %s rejected the %s: %s", child["ticker"], broker.name, child["role"], e)
        except BrokerError as e:
            log.error(
                "%s: the %s's fate at %s is unknown: %s",
                child["ticker"],
                child["role"],
                broker.name,
                e,
            )

    async def _resize_child(
        self, broker: Broker, child: dict[str, Any], step: brackets.Resize
    ) -> None:
        """Shrink a working child to what its bracket still holds: a new order takes its place
        (journaled first, under an id derived from the child's, so a restart finds it), the
        child is canceled, and only once it has ended is the new one sent, for what is held
        then. Cancel and send again rather than the broker's replace: a restart between the
        two finds each half by its id, on every broker."""
        now = self.clock()
        cid = child["client_order_id"]
        new_id = self.journal.insert_order(
            **{column: child[column] for column in brackets.KEPT_BY_RESIZE},
            client_order_id=step.client_order_id,
            quantity=step.quantity,
            status=OrderStatus.SUBMITTING,
            replaces=cid,
            created_at=now,
            updated_at=now,
        )
        log.info(
            "%s: the %s %s rests for more than the position holds: resized to %s (%s)",
            child["ticker"],
            child["role"],
            cid,
            step.quantity,
            step.client_order_id,
        )
        await self._cancel_child(broker, child, f"resized: {step.client_order_id} takes its place")
        await self._settle_child(broker, new_id)

    async def _send(self, broker: Broker, request: OrderRequest) -> OrderState:
        """Send one journaled order (no bracket, no replace), on disk first. A refusal is
        journaled rejected; any other broker error leaves its fate unknown, settled by lookup
        (as _execute does); both are raised. Answers the state as journaled."""
        await self.journal.durable()  # write-ahead: the order is on disk before it is sent
        try:
            state = await broker.submit(request)
        except OrderRejected as e:
            self._mark_orders([request], OrderStatus.REJECTED, str(e))
            raise
        except BrokerError as e:
            self._mark_orders([request], OrderStatus.UNKNOWN, str(e))
            raise
        return self.record_state(request.account, request.ticker, state)

    async def _cancel_child(self, broker: Broker, child: dict[str, Any], why: str) -> None:
        # write-ahead: what decided it (a fill, a resize's new order) is on disk
        await self.journal.durable()
        state = await broker.cancel(child["client_order_id"], ticker=child["ticker"])
        if state is None:  # the broker never had it: nothing to cancel
            self._journal_status(child, OrderStatus.CANCELED, why)
            return
        if state.status is OrderStatus.CANCELED:
            state = replace(state, message=f"{state.message}; {why}" if state.message else why)
        self.record_state(child["account"], child["ticker"], state)

    def _journal_status(self, order: dict[str, Any], status: OrderStatus, message: str) -> None:
        self.journal.update_order(
            order["client_order_id"], status=status, broker_message=message, updated_at=self.clock()
        )

    def _set_delivery(self, delivery_id: int, status: str, reason: str) -> Outcome:
        self.journal.update_delivery(
            delivery_id, status=status, reason=reason, updated_at=self.clock()
        )
        return Outcome(status, reason)


def _resting_stops(open_orders: list[OrderState]) -> tuple[RestingStop, ...]:
    """The working stop orders among a ticker's open orders, for breakeven to move."""
    return tuple(
        RestingStop(
            client_order_id=o.client_order_id,
            side=o.side,
            quantity=o.quantity - o.filled_quantity,
            order_type=o.order_type,
            stop_price=o.stop_price,
            limit_price=o.limit_price,
        )
        for o in open_orders
        if o.order_type in STOP_TYPES and o.side is not None and o.quantity is not None
    )


def _journaled_signal(signal_id: int, payload: str) -> Signal:
    """A journaled signal, read again under today's rules: one accepted before a rule was
    tightened (a ticker outside SPEC §12's alphabet) is refused, never replayed as it was."""
    parsed = parse_signal(payload)
    if parsed.signal is None:
        problems = "; ".join(f"{e.field}: {e.message}" for e in parsed.errors)
        raise UsageError(f"signal {signal_id} cannot be replayed: {problems}")
    return parsed.signal
