"""Scheduled work (SPEC §13): delayed deliveries, the cancel of orders left unfilled, and each
subscription's `flatten_at`. The journal's `schedules` rows are the truth; this keeps the
pending ones in memory and one timer on the loop for the soonest, which only wakes the engine.
At start every pending row is armed again, so a restart neither loses nor repeats an item.

Why the loop's own timer and not apscheduler (which drives the daemon's periodic work): these
are one-shot wake-ups whose due times, misfire rule (GRACE) and once-only guarantee live in the
journal; an apscheduler job store and its misfire_grace_time would be a second copy of that
truth, and the engine (tested without the daemon) would need a scheduler to run at all.

Each item runs in its account + ticker's lane, after the work queued there: a delayed delivery
is carried out there like any other; a cancel never lands between a delivery's planning and its
orders; flatten_at is the operator's flatten for the subscription's tickers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from tradepipe.core.model import DeliveryStatus, OrderRequest, OrderStatus
from tradepipe.core.resolve import Intent, Source
from tradepipe.core.schedules import (
    GRACE,
    ScheduleKind,
    ScheduleStatus,
    late_by,
    missed_reason,
    seconds_text,
)
from tradepipe.core.signal import parse_signal
from tradepipe.engine.commands import REPLAY_SOURCE, Commands
from tradepipe.engine.current import Current
from tradepipe.engine.delivery import Delivery, Outcome
from tradepipe.engine.flatten_at import FlattenTimes
from tradepipe.engine.lanes import Lanes, Work
from tradepipe.engine.recorder import Recorder
from tradepipe.errors import BrokerError, OrderRejected
from tradepipe.journal import DeliveryRow, Journal

log = logging.getLogger(__name__)

# How long the timer sleeps at most: a wall clock that jumps (NTP, a suspended laptop) is
# noticed within this, and an item that failed is retried after RETRY.
MAX_SLEEP = 30.0
RETRY = timedelta(seconds=10)


class Scheduler:
    def __init__(
        self,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        *,
        lanes: Lanes,
        delivery: Delivery,
        commands: Commands,
        recorder: Recorder,
    ) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self.lanes = lanes
        self.delivery = delivery
        self.commands = commands
        self.recorder = recorder
        self._pending: dict[int, dict[str, Any]] = {}  # schedule id → its journal row
        self._retry_at: dict[int, datetime] = {}
        self._running: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self.flattens = FlattenTimes(self, journal, current, clock, commands=commands)

    # -- arming --------------------------------------------------------------------------------

    def start(self) -> None:
        """Arm every pending item of the journal, and the next firing of each flatten_at."""
        self._started = True
        for row in self.journal.pending_schedules():
            self._pending[row["id"]] = row
        self.flattens.plan()
        self._wake()

    def stop(self) -> None:
        self._started = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self.tasks:
            task.cancel()

    def arm(self, row: dict[str, Any]) -> None:
        """A pending item just journaled: wake the engine at its time."""
        if row["status"] == ScheduleStatus.PENDING:
            self._pending[row["id"]] = row
            self._wake()

    @property
    def started(self) -> bool:
        return self._started

    def running(self, schedule_id: int) -> bool:
        return schedule_id in self._running

    def plan_flattens(self) -> None:
        """After a reload: each subscription's flatten_at as the config now says."""
        self.flattens.plan()

    def pending(self) -> list[dict[str, Any]]:
        """The pending items as armed now, soonest first."""
        return sorted(self._pending.values(), key=lambda r: (r["due_at"], r["id"]))

    def _due(self, row: dict[str, Any]) -> datetime:
        due = datetime.fromisoformat(row["due_at"])
        return max(due, self._retry_at.get(row["id"], due))

    def _wake(self) -> None:
        if not self._started:
            return  # start() arms what is journaled
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting = [self._due(r) for i, r in self._pending.items() if i not in self._running]
        if not waiting:
            return
        seconds = (min(waiting) - self.clock()).total_seconds()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(min(max(seconds, 0.0), MAX_SLEEP), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._spawn(self.run_due())

    def _spawn(self, work: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def run_due(self) -> None:
        """Run every pending item whose time has come (each in its lane); returns when they
        are done. The timer calls this; a test with a clock of its own may too."""
        now = self.clock()
        due = [
            row
            for row in self.pending()
            if row["id"] not in self._running and self._due(row) <= now
        ]
        runs = []
        for row in due:
            self._running.add(row["id"])
            runs.append(self._spawn(self._run(row)))
        if runs:
            await asyncio.gather(*runs, return_exceptions=True)
        self._wake()

    async def idle(self) -> None:
        """Wait until nothing scheduled is running (tests; a stop cancels instead)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def _run(self, row: dict[str, Any]) -> None:
        schedule_id = row["id"]
        try:
            kind = ScheduleKind(row["kind"])
            if kind is ScheduleKind.DELAY:
                await self._run_delay(row)
            elif kind is ScheduleKind.CANCEL_AFTER:
                await self._run_cancel(row)
            else:
                await self.flattens.run(row)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # kept pending, tried again: never silently dropped
            if isinstance(e, BrokerError):
                log.error("schedule %s (%s): %s; trying again", schedule_id, row["kind"], e)
            else:
                log.exception("schedule %s (%s) failed; trying again", schedule_id, row["kind"])
            self._retry_at[schedule_id] = self.clock() + RETRY
        finally:
            self._running.discard(schedule_id)

    def finish(self, row: dict[str, Any], status: ScheduleStatus, reason: str) -> None:
        self.journal.finish_schedule(row["id"], status, reason, self.clock())
        self._pending.pop(row["id"], None)
        self._retry_at.pop(row["id"], None)
        level = logging.WARNING if status is ScheduleStatus.MISSED else logging.INFO
        what = row["subscription"] if row["kind"] == ScheduleKind.FLATTEN_AT else row["ticker"]
        log.log(level, "schedule %s (%s %s): %s, %s", row["id"], row["kind"], what, status, reason)

    # -- delay: a delivery carried out at its time ---------------------------------------------

    def postpone(self, work: Work, delivery: DeliveryRow, intent: Intent) -> Outcome | None:
        """The signal's `delay` (SPEC §13): the delivery waits, journaled with its due time
        (received + delay), and the scheduler carries it out in this lane then. None: its time
        has come already (a restart that resumed it), so it runs now; more than GRACE past it
        is rejected, never sent late."""
        assert intent.delay is not None
        row = self.journal.signal(work.signal_id)
        assert row is not None
        due = datetime.fromisoformat(row["received_at"]) + timedelta(seconds=float(intent.delay))
        now = self.clock()
        if due <= now:
            late = late_by(due, now)
            if late is None:
                return None
            why = f"{missed_reason(late)}; nothing sent"
            return self.delivery.set_delivery(delivery, DeliveryStatus.REJECTED, why)
        shown = seconds_text(intent.delay)
        reason = f"waits for its delay of {shown} s: due at {due.astimezone(UTC):%H:%M:%S} UTC"
        with self.journal.transaction():
            schedule, _ = self.journal.add_schedule(
                kind=ScheduleKind.DELAY,
                subscription=delivery["subscription"],
                account=delivery["account"],
                ticker=delivery["ticker"],
                delivery_id=delivery["id"],
                detail=json.dumps({"seconds": shown}),
                due_at=due,
                at=now,
            )
            self.journal.update_delivery(
                delivery["id"],
                status=DeliveryStatus.DELAYED,
                reason=reason,
                provenance=intent.explain(delivery["subscription"], work.strategy),
                updated_at=now,
            )
        self.arm(schedule)
        return Outcome(DeliveryStatus.DELAYED, reason)

    async def _run_delay(self, row: dict[str, Any]) -> None:
        delivery = self.journal.delivery(row["delivery_id"])
        if delivery is None or delivery["status"] not in (
            DeliveryStatus.DELAYED,
            DeliveryStatus.PLANNED,
        ):
            status = delivery["status"] if delivery else "gone"
            self.finish(row, ScheduleStatus.CANCELED, f"the delivery is {status}: nothing to do")
            return
        if delivery["subscription"] not in self.current.config.subscriptions:
            why = f"subscription {delivery['subscription']} was removed from the config"
            self.delivery.set_delivery(delivery, DeliveryStatus.FAILED, f"{why}; nothing sent")
            self.finish(row, ScheduleStatus.CANCELED, why)
            return
        signal_row = self.journal.signal(delivery["signal_id"])
        assert signal_row is not None
        signal = parse_signal(signal_row["payload"] or "null").signal
        if signal is None:  # cannot happen for an accepted signal; keep it visible
            why = "its journaled payload no longer parses"
            self.delivery.set_delivery(delivery, DeliveryStatus.FAILED, f"{why}; nothing sent")
            self.finish(row, ScheduleStatus.CANCELED, why)
            return
        replayed = (signal_row["source"] or "").startswith(REPLAY_SOURCE)
        work = Work(signal_row["id"], signal_row["strategy"], signal, moves_mark=not replayed)
        work = self.lanes.for_account(work, delivery["account"])
        await self.lanes.in_lane(
            delivery["account"], delivery["ticker"], partial(self._delayed, work, row)
        )

    async def _delayed(self, work: Work, row: dict[str, Any]) -> None:
        delivery = self.journal.delivery(row["delivery_id"])  # again, in the lane
        assert delivery is not None
        status = delivery["status"]
        if status == DeliveryStatus.DELAYED:
            late = late_by(datetime.fromisoformat(row["due_at"]), self.clock())
            if late is not None:
                why = missed_reason(late)
                self.delivery.set_delivery(
                    delivery, DeliveryStatus.REJECTED, f"{why}; nothing sent"
                )
                self.finish(row, ScheduleStatus.MISSED, why)
                return
        elif status != DeliveryStatus.PLANNED:  # carried out meanwhile (resumed at start)
            self.finish(row, ScheduleStatus.DONE, f"the delivery is {status}")
            return
        # A planned one was interrupted while sending: its journaled plan is finished, whatever
        # the time (the broker is asked about each order by its id; nothing is sent twice).
        outcome = await self.delivery.deliver(work, delivery)
        self.finish(row, ScheduleStatus.DONE, f"delivery {outcome.status}: {outcome.reason}")

    # -- cancel_after: an order left unfilled is canceled --------------------------------------

    def cancel_later(self, delivery: DeliveryRow, request: OrderRequest, intent: Intent) -> None:
        """`cancel_after` / `cancelAfter` (SPEC §13): an entry or exit order accepted unfilled
        is canceled that long after, if it is still open then (engine/scheduler.py)."""
        assert intent.cancel_after is not None
        source = intent.provenance["cancel_after"].source
        name = "cancelAfter" if source is Source.SIGNAL else "cancel_after"
        now = self.clock()
        schedule, _ = self.journal.add_schedule(
            kind=ScheduleKind.CANCEL_AFTER,
            subscription=delivery["subscription"],
            account=request.account,
            ticker=request.ticker,
            delivery_id=delivery["id"],
            client_order_id=request.client_order_id,
            detail=json.dumps({"seconds": seconds_text(intent.cancel_after), "from": name}),
            due_at=now + timedelta(seconds=float(intent.cancel_after)),
            at=now,
        )
        self.arm(schedule)

    async def _run_cancel(self, row: dict[str, Any]) -> None:
        await self.lanes.in_lane(row["account"], row["ticker"], partial(self._cancel, row))

    async def _cancel(self, row: dict[str, Any]) -> None:
        detail = json.loads(row["detail"] or "{}")
        rule = f"{detail.get('seconds')} s ({detail.get('from', 'cancel_after')})"
        cid = row["client_order_id"]
        order = self.journal.order_by_client_id(cid)
        if order is None:
            self.finish(row, ScheduleStatus.CANCELED, f"order {cid} is not in the journal")
            return
        if OrderStatus(order["status"]).is_final:
            why = f"{order['status']} before its cancel after {rule}: nothing sent"
            self.finish(row, ScheduleStatus.DONE, why)
            return
        broker = self.current.brokers.get(row["account"])
        if broker is None:
            why = f'account "{row["account"]}" was removed from the config; order {cid} left'
            self.finish(row, ScheduleStatus.CANCELED, why)
            return
        ticker = order["ticker"]
        found = await broker.get_order(cid, ticker=ticker)
        if found is not None:
            state = self.recorder.record_state(row["account"], ticker, found)
            if state.status.is_final:
                why = f"{state.status} before its cancel after {rule}: nothing sent"
                self.finish(row, ScheduleStatus.DONE, why)
                return
        await self.journal.durable()  # write-ahead: what led to the cancel is on disk
        try:
            answer = await broker.cancel(cid, ticker=ticker)
        except OrderRejected as e:  # it ended meanwhile (filled), or the broker refuses
            found = await broker.get_order(cid, ticker=ticker)
            if found is not None:
                found = self.recorder.record_state(row["account"], ticker, found)
            if found is not None and found.status.is_final:
                why = f"{found.status} before its cancel after {rule}: nothing sent"
                self.finish(row, ScheduleStatus.DONE, why)
            else:
                why = f"{broker.name} would not cancel order {cid}: {e}; it stays working"
                self.finish(row, ScheduleStatus.DONE, why)
            return
        if answer is not None:
            self.recorder.record_state(row["account"], ticker, answer)
        order = self.journal.order_by_client_id(cid) or order
        filled = Decimal(order["filled_quantity"] or 0)
        why = f"canceled: unfilled after {rule}"
        if filled:
            why += f"; {filled} of {Decimal(order['quantity'])} had filled"
        self.finish(row, ScheduleStatus.DONE, why)


__all__ = ["GRACE", "Scheduler"]
