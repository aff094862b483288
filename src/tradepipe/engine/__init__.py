"""The engine: turns journaled signals into deliveries, plans and broker orders.

The only package that sequences I/O. `Engine` is the wiring: it builds one component per job
(lanes.py sequences, delivery.py carries a signal out through planner.py, recorder.py journals
what brokers answer, bracket_emulator.py, reconciler.py, health.py, commands.py, reload.py),
owns start, stop and the order of recovery at start, and keeps the public methods the daemon,
the CLI and the tests call. See docs/architecture.md for the walk of one signal through them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradepipe.brokers.base import Broker
from tradepipe.core.model import OrderState
from tradepipe.core.reconcile import Difference
from tradepipe.core.signal import Signal, parse_signal
from tradepipe.engine.bracket_emulator import BracketEmulator
from tradepipe.engine.commands import REPLAY_SOURCE, Commands
from tradepipe.engine.current import Current
from tradepipe.engine.delivery import Delivery, Outcome
from tradepipe.engine.equity import EquityKeeper
from tradepipe.engine.health import HealthMonitor
from tradepipe.engine.lanes import Chore, Lanes, Work
from tradepipe.engine.metrics import Metrics
from tradepipe.engine.notifier import Notifier
from tradepipe.engine.order_poller import LOOKUPS_PER_ROUND, POLL_INTERVAL, OrderPoller
from tradepipe.engine.planner import Planner
from tradepipe.engine.pretrade import PreTrade
from tradepipe.engine.reconciler import Reconciler
from tradepipe.engine.recorder import Recorder
from tradepipe.engine.reload import Reload
from tradepipe.engine.risk import RiskLimits
from tradepipe.engine.scheduler import Scheduler
from tradepipe.engine.trading_states import TradingStates
from tradepipe.errors import BrokerError
from tradepipe.journal import DeliveryRow, Journal
from tradepipe.journal.equity import AT_START
from tradepipe.journal.trading_states import state_row_json

if TYPE_CHECKING:
    from tradepipe.config import Config

__all__ = ["Engine"]

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        config: Config,
        journal: Journal,
        brokers: Mapping[str, Broker],
        clock: Callable[[], datetime],
        *,
        fill_poll_interval: float = 0.2,
        reconnect_backoff: tuple[float, float] = (1.0, 60.0),
        stream_poll_interval: float = POLL_INTERVAL,
        stream_poll_lookups: int = LOOKUPS_PER_ROUND,
        run_schedules: bool = True,
    ) -> None:
        self.current = Current(config, brokers)
        self.journal = journal
        self.clock = clock
        # account + ticker → the position difference that blocks new entries there
        self.blocked: dict[tuple[str, str], Difference] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # The trading states in force (SPEC §13), read once here and kept in memory.
        self.states = TradingStates(journal, clock)
        # The outbox (SPEC §14): components write in their causes' transactions, a task sends.
        self.notifier = Notifier(journal, self.current, clock)
        self.metrics = Metrics()  # its own registry: one per engine, never the global one
        # The risk limits' figures, in memory (seeded at start), and their trips.
        self.risk = RiskLimits(
            journal, self.current, clock, self.states, flatten=self._flatten_tripped
        )
        self.lanes = Lanes(journal, self.current, clock, deliver=self._deliver, chore=self._chore)
        self.lanes.fail = lambda delivery, why: self.delivery.set_delivery(delivery, "failed", why)
        self.recorder = Recorder(
            journal,
            self.current,
            clock,
            settle_due=self._settle_due,
            filled=self._filled,
            fill_booked=self.risk.fill_booked,
            order_sent=self.risk.order_sent,
            notify=self.notifier.notify,
        )
        self.emulator = BracketEmulator(
            journal, self.current, clock, self.recorder, queue_chore=self.lanes.queue_chore
        )
        # While a broker's order stream is down, its working orders are polled over REST.
        self.order_poller = OrderPoller(
            journal,
            brokers,
            self._listener,
            clock,
            interval=stream_poll_interval,
            lookups=stream_poll_lookups,
        )
        self.monitor = HealthMonitor(
            self.current,
            clock,
            backoff=reconnect_backoff,
            blocked=self.blocked,
            stalled=self.lanes.stalled,
            streams=self.order_poller.health,
            trading_states=lambda: [state_row_json(r) for r in self.states.in_force()],
            notify=self.notifier.notify,
        )
        self.equity = EquityKeeper(
            journal,
            self.current,
            clock,
            is_down=lambda account: account in self.monitor.reconnect,
            recorded=self.risk.equity_recorded,
        )
        self.reconciler = Reconciler(
            journal,
            self.current,
            clock,
            self.recorder,
            self.monitor,
            blocked=self.blocked,
            queue_chore=self.lanes.queue_chore,
            notify=self.notifier.notify,
        )
        self.states.notify = self.notifier.notify
        self.notifier.daily.in_force = lambda: [
            f"{r.state.scope} is {r.state.state}: {r.state.reason}" for r in self.states.in_force()
        ]
        self.pretrade = PreTrade(self.states, self.risk)
        self.planner = Planner(
            journal, self.current, clock, blocked=self.blocked, pretrade=self.pretrade
        )
        self.delivery = Delivery(
            journal,
            self.current,
            clock,
            recorder=self.recorder,
            planner=self.planner,
            emulator=self.emulator,
            reconciler=self.reconciler,
            fill_poll_interval=fill_poll_interval,
            notify=self.notifier.notify,
            metrics=self.metrics,
        )
        self.commands = Commands(
            journal,
            self.current,
            clock,
            lanes=self.lanes,
            delivery=self.delivery,
            planner=self.planner,
            recorder=self.recorder,
        )
        # delay, cancel_after and flatten_at (SPEC §13): journaled, armed again at start.
        self.scheduler = Scheduler(
            journal,
            self.current,
            clock,
            lanes=self.lanes,
            delivery=self.delivery,
            commands=self.commands,
            recorder=self.recorder,
        )
        self.delivery.scheduler = self.scheduler
        # Brokers connected (at start, after a reload) and SIGHUP's swap (SPEC §11).
        self.reload = Reload(
            self.current,
            lanes=self.lanes,
            scheduler=self.scheduler,
            order_poller=self.order_poller,
            monitor=self.monitor,
            reconciler=self.reconciler,
        )
        # A one-shot CLI run (no daemon) journals scheduled work but leaves running it, and
        # judging what is late, to the daemon: it stops as soon as its own work is done.
        self.run_schedules = run_schedules

    # -- the config and brokers of now, and what the status reports read -----------------------

    @property
    def config(self) -> Config:
        return self.current.config

    @config.setter
    def config(self, config: Config) -> None:
        self.current.config = config

    @property
    def brokers(self) -> Mapping[str, Broker]:
        return self.current.brokers

    @brokers.setter
    def brokers(self, brokers: Mapping[str, Broker]) -> None:
        self.current.brokers = brokers

    @property
    def broker_health(self) -> dict[str, dict[str, Any]]:
        """account → {"ok", "checked_at", "error", "differences"} of the last check."""
        return self.monitor.broker_health

    @property
    def stalled(self) -> dict[int, str]:
        """signal id → why it waits for the next start (never silently)."""
        return self.lanes.stalled

    @property
    def reconnect_backoff(self) -> tuple[float, float]:
        return self.monitor.backoff

    @reconnect_backoff.setter
    def reconnect_backoff(self, backoff: tuple[float, float]) -> None:
        self.monitor.backoff = backoff

    # -- life cycle: start (the order of recovery), stop (a reload: reload.py) ----------------

    async def start(self) -> None:
        self.journal.forget_memory()  # what a start reads is the file
        self.risk.seed()  # the risk limits' counts, from the journal, before any signal
        for account, broker in self.brokers.items():
            await self.reload.attach(account, broker)
        for account, broker in self.brokers.items():
            try:  # orders whose answer a crash or a timeout lost: ask the broker by id
                await self.reconciler.look_up_interrupted(account)
                await self.settle_unknown(account)
            except BrokerError as e:  # retried before the ticker's next delivery
                log.error("orders of unknown state at %s: %s", account, e)
            try:  # before any new signal: the journal against the broker
                await self.reconcile_account(account)
            except BrokerError as e:
                self.monitor.failed(account, e)
            if not broker.capabilities.brackets:
                # Emulated brackets a stop interrupted: an entry may have filled meanwhile.
                for ticker in {c["ticker"] for c in self.journal.bracket_children(account)}:
                    try:
                        await self.settle_brackets(account, ticker)
                    except BrokerError as e:  # retried before the ticker's next delivery
                        log.error("emulated brackets of %s %s: %s", account, ticker, e)
        for account in self.brokers:  # taken by the equity task, off the signal path
            self.equity.due(account, AT_START)
        self.lanes.start()
        self._tasks.append(asyncio.create_task(self.order_poller.run(), name="order poller"))
        self._tasks.append(asyncio.create_task(self.equity.run(), name="equity snapshots"))
        self._tasks.append(asyncio.create_task(self.notifier.run(), name="notifications"))
        for row in self.journal.unprocessed_signals():
            parsed = parse_signal(row["payload"] or "null")
            if parsed.signal is None:  # cannot happen for an accepted row; keep it visible
                log.error("signal %s: journaled payload no longer parses", row["id"])
                continue
            log.info("resuming signal %s interrupted by a stop", row["id"])
            replayed = (row["source"] or "").startswith(REPLAY_SOURCE)
            self.enqueue(row["id"], row["strategy"], parsed.signal, moves_mark=not replayed)
        # Last: a delayed delivery or a cancel that came due while stopped runs after the
        # recovery above, and after the signals resumed here in its lane.
        if self.run_schedules:
            self.scheduler.start()

    async def stop(self) -> None:
        self.scheduler.stop()
        tasks = [*self._tasks, *self.lanes.tasks, *self.scheduler.tasks, *self.risk.trips.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self.lanes.tasks.clear()
        self.notifier.close()
        for broker in self.brokers.values():
            await broker.close()

    # -- the wiring between components ---------------------------------------------------------

    def _listener(self, account: str) -> Callable[[OrderState], None]:
        return self.lanes.listener(account)

    async def _deliver(self, work: Work, delivery: DeliveryRow) -> Outcome:
        return await self.delivery.deliver(work, delivery)

    def _filled(self, account: str) -> None:
        self.equity.due(account)

    async def _flatten_tripped(self, account: str, why: str) -> None:
        """on_trip = "flatten": close everything on the account (the operator's flatten path)."""
        await self.commands.flatten(account, why=why)

    def _settle_due(self, account: str, ticker: str) -> None:
        self.emulator.schedule_settle(account, ticker)

    async def _chore(self, chore: Chore) -> None:
        """One chore in its lane; a failure is reported, never stops the lane."""
        try:
            if chore.kind == "record":
                assert chore.state is not None
                self.record_state(chore.account, chore.ticker, chore.state, streamed=True)
            elif chore.kind == "reconcile":
                await self.reconcile(chore.account, chore.ticker)
            else:
                await self.emulator.settle_chore(chore.account, chore.ticker)
        except BrokerError as e:  # journaled states stay; the next chore or start retries
            self.monitor.failed(chore.account, e)
        except Exception:
            log.exception("%s of %s %s", chore.kind, chore.account, chore.ticker)

    # -- signals in, and the lanes -------------------------------------------------------------

    def enqueue(
        self, signal_id: int, strategy: str, signal: Signal, *, moves_mark: bool = True
    ) -> None:
        """Hand over an acknowledged signal; returns at once (processing follows the answer)."""
        self.lanes.enqueue(signal_id, strategy, signal, moves_mark=moves_mark)

    async def drain(self) -> None:
        """Wait until every enqueued signal has been processed."""
        await self.lanes.drain()

    async def in_lane(self, account: str, ticker: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run an operator's step in the account + ticker's lane, after the signals queued
        there, so it never lands between a delivery's planning and its orders."""
        return await self.lanes.in_lane(account, ticker, call)

    # -- the components' public steps ----------------------------------------------------------

    def record_state(
        self, account: str, ticker: str, state: OrderState, *, streamed: bool = False
    ) -> OrderState:
        """Journal what the broker says of one of our orders (Recorder.record_state)."""
        return self.recorder.record_state(account, ticker, state, streamed=streamed)

    async def settle_brackets(self, account: str, ticker: str) -> None:
        """Emulate the ticker's brackets one round (BracketEmulator.settle_brackets)."""
        await self.emulator.settle_brackets(account, ticker)

    async def settle_unknown(self, account: str, ticker: str | None = None) -> None:
        """Settle orders whose answer was lost by lookup (Reconciler.settle_unknown)."""
        await self.reconciler.settle_unknown(account, ticker)

    async def reconcile(self, account: str, ticker: str) -> list[Difference]:
        """Compare one account + ticker with the broker (Reconciler.reconcile)."""
        return await self.reconciler.reconcile(account, ticker)

    async def reconcile_account(self, account: str) -> list[Difference]:
        """Every ticker the journal or the broker has anything on, one after the other."""
        return await self.reconciler.reconcile_account(account)

    async def reconcile_everything(self) -> None:
        """The periodic check: each account + ticker in its own lane, after the work queued
        there, so none of our own deliveries is caught half-way."""
        for account in self.brokers:
            try:
                await self.reconciler.queue_account(account)
            except BrokerError as e:
                self.monitor.failed(account, e)

    async def reconnect_due(self) -> None:
        """Reconnect the brokers whose backoff has run out; a success reconciles them at once
        (what happened while they were away), a failure doubles the wait."""
        await self.monitor.reconnect_due(self.reconciler.queue_account)

    def health(self) -> dict[str, Any]:
        """What /healthz and `tradepipe status` report (HealthMonitor.report)."""
        return self.monitor.report()

    # -- the operator's commands (commands.py) -------------------------------------------------

    async def review(self, delivery_id: int, *, approve: bool) -> dict[str, Any]:
        """Approve or reject a delivery waiting for approval (`auto_submit = false`)."""
        return await self.commands.review(delivery_id, approve=approve)

    async def preview(self, signal_id: int) -> list[dict[str, Any]]:
        """What the signal would do now: a dry run (`tradepipe replay ID`)."""
        return await self.commands.preview(signal_id)

    def replay(self, signal_id: int) -> int:
        """Send a journaled signal again, as a new signal; returns its id."""
        return self.commands.replay(signal_id)

    async def flatten(
        self, account: str | None = None, ticker: str | None = None
    ) -> list[dict[str, Any]]:
        """Cancel the open orders, then close the position, of every account + ticker in the
        scope, each in its lane; answers what was done."""
        return await self.commands.flatten(account, ticker)

    def risk_report(self) -> dict[str, Any]:
        """What `tradepipe risk` shows: the states in force, the limits and their use."""
        from tradepipe.engine.risk_report import risk_report

        return risk_report(self.risk, self.states.listing())
