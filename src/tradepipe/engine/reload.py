"""A reload (SIGHUP, SPEC §11), driven by daemon/reloading.py: the config and brokers of now
swapped in one step (`use_config`), then the brokers it replaced closed once the work already
queued for them is done, and the fresh ones attached and reconciled (`connect_replaced`).
Deliveries already dispatched keep the config they were dispatched with. Attaching a broker
(its events to the lanes, its disconnects to the health monitor, then connect) is also how
`Engine.start` connects every account."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tradepipe.brokers.base import Broker
from tradepipe.engine.current import Current
from tradepipe.engine.health import HealthMonitor
from tradepipe.engine.lanes import Lanes
from tradepipe.engine.order_poller import OrderPoller
from tradepipe.engine.reconciler import Reconciler
from tradepipe.engine.scheduler import Scheduler
from tradepipe.errors import BrokerError, BrokerUnavailable

if TYPE_CHECKING:
    from tradepipe.config import Config

log = logging.getLogger(__name__)


class Reload:
    def __init__(
        self,
        current: Current,
        *,
        lanes: Lanes,
        scheduler: Scheduler,
        order_poller: OrderPoller,
        monitor: HealthMonitor,
        reconciler: Reconciler,
    ) -> None:
        self.current = current
        self.lanes = lanes
        self.scheduler = scheduler
        self.order_poller = order_poller
        self.monitor = monitor
        self.reconciler = reconciler
        self.blocked = reconciler.blocked  # account + ticker → the difference blocking entries

    async def attach(self, account: str, broker: Broker) -> None:
        """Its order events to the lanes, a disconnect to the health monitor; then connect."""
        broker.listen(self.lanes.listener(account))

        def disconnected(why: str) -> None:
            self.monitor.failed(account, BrokerUnavailable(why))

        broker.on_disconnect(disconnected)
        try:
            await broker.connect()
        except BrokerError as e:  # reported and retried with backoff; the rest serve on
            self.monitor.failed(account, e)

    def use_config(self, config: Config, brokers: Mapping[str, Broker]) -> dict[str, Broker]:
        """From now on `config` for new signals and `brokers` for every account, swapped in
        one step. Deliveries already dispatched keep the config they were dispatched with.
        Answers the brokers this replaced (`connect_replaced` next)."""
        old = self.current.brokers
        self.current.config, self.current.brokers = config, brokers
        self.scheduler.plan_flattens()  # a flatten_at the reload changed is armed anew
        self.order_poller.brokers = brokers  # the poller watches the accounts of now
        for account in set(old) - set(brokers):
            # Its journal rows stay (open orders included); nothing watches them any more.
            self.monitor.forget(account)
            for key in [key for key in self.blocked if key[0] == account]:
                del self.blocked[key]
        return {name: broker for name, broker in old.items() if brokers.get(name) is not broker}

    async def connect_replaced(self, replaced: Mapping[str, Broker], fresh: list[str]) -> None:
        """Close the brokers a reload replaced or removed, then connect the `fresh` ones (new
        accounts, changed ones: closed first, as an IB client id takes one connection at a
        time) and reconcile each in its lanes. A failed connection is retried with backoff."""
        for account, broker in replaced.items():
            await self._finish_queued(account)
            try:
                await broker.close()
            except Exception:  # the old connection's trouble must not stop the new one
                log.exception("broker %s: closing the replaced connection", account)
        for account in fresh:
            broker = self.current.brokers[account]
            self.monitor.reconnect.pop(account, None)
            await self.attach(account, broker)
            if account in self.monitor.reconnect:
                continue  # failed: reconnect_due retries it
            try:
                await self.reconciler.queue_account(account)
            except BrokerError as e:
                self.monitor.failed(account, e)

    async def _finish_queued(self, account: str, timeout: float = 150.0) -> None:
        """Let what the account's lanes hold now finish with the broker it started with (a
        reversal waits up to its exit_fill_timeout); work queued after this uses the new one."""
        barriers = [
            self.lanes.in_lane(account, ticker, _nothing) for ticker in self.lanes.tickers(account)
        ]
        if not barriers:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*barriers), timeout)
        except TimeoutError:
            log.warning("broker %s: work still in flight after %.0f s; closing", account, timeout)


async def _nothing() -> None:
    """A lane barrier: runs once everything queued before it has."""
