"""Lanes: the sequencing of the engine. Signals arrive in an inbox in the order they were
acknowledged; each delivery, chore and operator's step then runs in the lane of its account +
ticker, one at a time, so a burst of alerts for one instrument cannot race (SPEC §6)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from tradepipe.core.instruments import lane_key
from tradepipe.core.model import FINAL_DELIVERY, DeliveryStatus, OrderState
from tradepipe.core.signal import Signal
from tradepipe.engine.current import Current
from tradepipe.engine.drill import pause_point
from tradepipe.journal import DeliveryRow, Journal

if TYPE_CHECKING:
    from tradepipe.config import Config
    from tradepipe.engine.delivery import Outcome

log = logging.getLogger(__name__)

# A delivery in one of these is done: resumed after a stop, its lane passes it by.


@dataclass(frozen=True, slots=True)
class Work:
    signal_id: int
    strategy: str
    signal: Signal
    # The config the signal was dispatched under: its deliveries keep it through a reload.
    config: Config | None = None
    # The signal's price moves the paper mark: not for an approval or a replay, whose price is
    # old news (they plan and fill at the mark of the moment).
    moves_mark: bool = True
    # When it was handed to the engine (monotonic): the metrics' handover → submit latency.
    handed_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class LaneItem:
    work: Work
    delivery: DeliveryRow


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


class Lanes:
    """The inbox, one queue per account + ticker, and the count `drain()` waits on. What a lane
    item does is handed in: `deliver` one delivery, do one `chore`."""

    def __init__(
        self,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        *,
        deliver: Callable[[Work, DeliveryRow], Awaitable[Outcome]],
        chore: Callable[[Chore], Awaitable[None]],
    ) -> None:
        self.journal = journal
        # Journals a delivery a bug stopped as failed (the engine's also tells the trader).
        self.fail: Callable[[DeliveryRow, str], object] = self._journal_failure
        self.current = current
        self.clock = clock
        self._deliver = deliver
        self._chore = chore
        self._inbox: asyncio.Queue[Work] = asyncio.Queue()
        # (account, lane_key) → its lane, and the ticker that opened it
        self._lanes: dict[tuple[str, str], asyncio.Queue[LaneWork]] = {}
        self._named: dict[tuple[str, str], str] = {}
        self.tasks: list[asyncio.Task[None]] = []
        # signal id → why it waits for the next start (never silently)
        self.stalled: dict[int, str] = {}
        self._remaining: dict[int, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0

    def start(self) -> None:
        self.tasks.append(asyncio.create_task(self._dispatch_forever(), name="dispatch"))

    def enqueue(
        self, signal_id: int, strategy: str, signal: Signal, *, moves_mark: bool = True
    ) -> None:
        """Hand over an acknowledged signal; returns at once (processing follows the answer)."""
        self._busy += 1
        self._idle.clear()
        self._inbox.put_nowait(Work(signal_id, strategy, signal, moves_mark=moves_mark))

    async def drain(self) -> None:
        """Wait until every enqueued signal (and queued chore) has been processed."""
        await self._idle.wait()

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
        config = self.current.config
        work = replace(work, config=config)
        subscriptions = config.subscriptions_for(work.strategy)
        if not subscriptions:
            log.warning(
                "signal %s: strategy %s has no enabled subscription", work.signal_id, work.strategy
            )
        now = self.clock()
        # Each delivery names the instrument as its account's broker does (SPEC §6: one
        # position per account + instrument, however the alert spelled it); the signal row
        # keeps the text that came in.
        works = [self.for_account(work, s.account) for _, s in subscriptions]
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
                    status=DeliveryStatus.QUEUED,
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

    def for_account(self, work: Work, account: str) -> Work:
        """The work with the signal's ticker as the account's broker spells the instrument."""
        ticker = self.current.canonical(account, work.signal.ticker)
        if ticker == work.signal.ticker:
            return work
        return replace(work, signal=replace(work.signal, ticker=ticker))

    def tickers(self, account: str) -> list[str]:
        """The tickers the account has a lane for (work may be queued or running in them)."""
        return [ticker for (name, _), ticker in self._named.items() if name == account]

    def _lane(self, account: str, ticker: str) -> asyncio.Queue[LaneWork]:
        # One lane per instrument: a journal row or a stream event under another spelling of it
        # (written before tickers were canonical) queues behind the same work; option contracts
        # queue with their underlying, dated futures with their continuous ticker (lane_key).
        canonical = self.current.canonical(account, ticker)
        key = (account, lane_key(canonical))
        lane = self._lanes.get(key)
        if lane is None:
            self._named[key] = canonical  # the ticker that opened it, for `tickers`
            lane = self._lanes[key] = asyncio.Queue()
            self.tasks.append(asyncio.create_task(self._run_lane(lane), name=f"lane {key}"))
        return lane

    async def _run_lane(self, lane: asyncio.Queue[LaneWork]) -> None:
        while True:
            item = await lane.get()
            if isinstance(item, LaneCall):
                await self._call_in_lane(item)
                continue
            if isinstance(item, Chore):
                try:
                    await self._chore(item)
                finally:
                    self._done()
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
                    self.fail(delivery, f"internal error: {e!r}")
                except Exception:
                    log.exception("delivery %s: could not journal the failure", delivery["id"])
            self._count_down(work.signal_id)

    def _journal_failure(self, delivery: DeliveryRow, reason: str) -> None:
        self.journal.update_delivery(
            delivery["id"], status=DeliveryStatus.FAILED, reason=reason, updated_at=self.clock()
        )

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

    def _finish_signal(self, signal_id: int) -> None:
        self._remaining.pop(signal_id, None)
        self.journal.mark_signal_processed(signal_id, self.clock())
        self._done()

    def _done(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self._idle.set()

    def queue_chore(self, chore: Chore) -> None:
        self._busy += 1  # drain() waits for it like for a signal
        self._idle.clear()
        self._lane(chore.account, chore.ticker).put_nowait(chore)

    def listener(self, account: str) -> Callable[[OrderState], None]:
        """What a broker's stream reports is journaled in the ticker's lane, after the work
        queued there, so it never lands between a delivery's planning and its orders."""

        def heard(state: OrderState) -> None:
            ticker = state.ticker
            if ticker is None:
                journaled = self.journal.order_by_client_id(state.client_order_id)
                if journaled is None:
                    return  # not ours: reconciliation reports such orders
                ticker = journaled["ticker"]
            self.queue_chore(Chore("record", account, ticker, state))

        return heard

    async def in_lane(self, account: str, ticker: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run an operator's step in the account + ticker's lane, after the signals queued
        there, so it never lands between a delivery's planning and its orders."""
        await self._inbox.join()  # signals acknowledged before now reach their lanes first
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._lane(account, ticker).put_nowait(LaneCall(call, done))
        return await done

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
