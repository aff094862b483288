"""SIGHUP (`systemctl reload`, SPEC §11): read the config again and swap it in between signals.

A valid file takes effect for the next signals: strategies and their tokens (an old token is
answered 404 from then on), subscriptions, settings and limits. Deliveries already dispatched
finish under the config they started with. Accounts whose settings changed get a new
connection, new accounts connect, removed ones are closed (their journal rows, open orders
included, stay). An invalid file is refused: its errors are logged and the running config
stays. Either way the outcome is an operator event in the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradepipe.brokers import make_broker
from tradepipe.brokers.base import Broker
from tradepipe.config import load_config
from tradepipe.engine import Engine
from tradepipe.journal import Journal

if TYPE_CHECKING:
    from tradepipe.config import Account, Config

log = logging.getLogger(__name__)

SECTIONS = ("strategies", "subscriptions", "accounts")


def config_changes(old: Config, new: Config) -> dict[str, dict[str, list[str]]]:
    """Per table (strategies, subscriptions, accounts): the names added, removed, changed."""
    changes = {}
    for section in SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        changes[section] = {
            "added": [name for name in after if name not in before],
            "removed": [name for name in before if name not in after],
            "changed": [
                name
                for name in after
                if name in before and before[name].model_dump() != after[name].model_dump()
            ],
        }
    return changes


# Account keys the engine reads at each delivery and no broker is built from: changing only
# these keeps the running connection (replacing it would close it under work in flight).
ENGINE_READS = frozenset({"allow_leverage"})


def _broker_settings(account: Account) -> dict[str, Any]:
    settings: dict[str, Any] = account.model_dump(exclude=set(ENGINE_READS))
    return settings


def describe_changes(changes: dict[str, dict[str, list[str]]]) -> str:
    """ "strategies +1 -0 ~0 (+swing), subscriptions +0 -0 ~2 (~a, ~b), accounts +0 -0 ~0"."""
    parts = []
    for section, change in changes.items():
        counts = f"+{len(change['added'])} -{len(change['removed'])} ~{len(change['changed'])}"
        names = [
            f"{mark}{name}"
            for mark, kind in (("+", "added"), ("-", "removed"), ("~", "changed"))
            for name in change[kind]
        ]
        parts.append(f"{section} {counts}" + (f" ({', '.join(names)})" if names else ""))
    return ", ".join(parts)


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Reloader:
    """Owns the running config; `request()` is the SIGHUP handler. One reload at a time."""

    def __init__(
        self,
        config: Config,
        *,
        journal: Journal,
        engine: Engine,
        webhook: Any,
        actions: Any,
        clock: Callable[[], datetime],
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.engine = engine
        self.webhook = webhook
        self.actions = actions
        self.clock = clock
        self.notify = notify
        self.scheduler: Any = None  # its reconciliation job follows [reconciliation].interval
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()

    def request(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def reload(self) -> bool:
        """Read the config file again; True if it now runs, False if it was refused."""
        async with self._lock:
            # systemd (Type=notify) shows the unit as reloading until READY=1; since v253 it
            # wants the CLOCK_MONOTONIC time of the request with RELOADING=1.
            self.notify(f"RELOADING=1\nMONOTONIC_USEC={_monotonic_usec()}")
            try:
                return await self._reload()
            finally:
                self.notify("READY=1")

    async def _reload(self) -> bool:
        old = self.config
        path = old.path
        log.info("reloading the config from %s", path)
        built: dict[str, Broker] = {}
        try:
            new = load_config(path)
            brokers = self._brokers(old, new, built)
        except Exception as e:
            for broker in built.values():
                with contextlib.suppress(Exception):
                    await broker.close()
            # load_config's messages never carry a secret's value (config.SECRET_KEYS).
            log.error("config reload refused; the running config stays:\n  %s", e)
            self.journal.record_operator_action(
                "config reload refused", str(path), self.clock(), errors=str(e)
            )
            return False
        self._pin_unreloadable(old, new)
        changes = config_changes(old, new)
        # The swap: no await between these, so no request or delivery sees half of it.
        replaced = self.engine.reload.use_config(new, brokers)
        self.webhook.use_config(new)
        self.actions.config = new
        self.config = new
        summary = describe_changes(changes)
        log.info("config reloaded: %s", summary)
        self.journal.record_operator_action(
            "config reload", str(path), self.clock(), summary=summary
        )
        for name in changes["accounts"]["removed"]:
            working = len(self.journal.working_orders(name))
            log.warning(
                "account %s is no longer configured: disconnected; its %d working orders stay"
                " in the journal, unwatched",
                name,
                working,
            )
        self._reschedule(old, new)
        await self.engine.reload.connect_replaced(replaced, list(built))
        return True

    def _brokers(self, old: Config, new: Config, built: dict[str, Broker]) -> dict[str, Broker]:
        """The running broker of each unchanged account; a new one (not yet connected) for
        each new or changed account, added to `built`. Missing credentials raise here, before
        anything is swapped."""
        brokers: dict[str, Broker] = {}
        for name, account in new.accounts.items():
            current = self.engine.brokers.get(name)
            before = old.accounts.get(name)
            unchanged = before is not None and _broker_settings(before) == _broker_settings(account)
            if current is not None and unchanged:
                brokers[name] = current
                continue
            broker = make_broker(name, account, self.journal, self.clock)
            built[name] = brokers[name] = broker
        return brokers

    def _pin_unreloadable(self, old: Config, new: Config) -> None:
        """What a reload cannot move: the journal this process holds the lock of, and the
        socket it listens on. Both are said, and take effect at the next start."""
        if new.journal.path != old.journal.path:
            log.warning(
                "journal.path changed to %s: the daemon keeps %s until it restarts",
                new.journal.path,
                old.journal.path,
            )
            new.journal.path = old.journal.path
        if (new.server.host, new.server.port) != (old.server.host, old.server.port):
            log.warning(
                "server.host/port changed to %s:%s: the listener moves at the next restart",
                new.server.host,
                new.server.port,
            )

    def _reschedule(self, old: Config, new: Config) -> None:
        interval = float(new.reconciliation.interval)
        if self.scheduler is None or interval == float(old.reconciliation.interval):
            return
        job = self.scheduler.get_job("reconcile")
        if job is not None:
            job.remove()
        if interval > 0:
            self.scheduler.add_job(
                self.engine.reconcile_everything,
                "interval",
                seconds=interval,
                id="reconcile",
                max_instances=1,
                coalesce=True,
            )
