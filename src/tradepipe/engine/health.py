"""Broker health: each account's last check, the reconnection back-off of a broker that failed,
and the report /healthz and `tradepipe status` show (with the blocks and the stalled signals)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from tradepipe.core.notify import Notify, NotifyKind, no_notify
from tradepipe.core.reconcile import Difference
from tradepipe.engine.current import Current
from tradepipe.errors import BrokerError

log = logging.getLogger(__name__)


class HealthMonitor:
    """Reads what others keep (`blocked` entries, `stalled` signals, the order `streams`) and
    keeps its own: `broker_health` and the reconnection schedule."""

    def __init__(
        self,
        current: Current,
        clock: Callable[[], datetime],
        *,
        backoff: tuple[float, float],
        blocked: Mapping[tuple[str, str], Difference],
        stalled: Mapping[int, str],
        streams: Callable[[], Mapping[str, dict[str, Any]]],
        trading_states: Callable[[], list[dict[str, Any]]] = list,
        notify: Notify = no_notify,
    ) -> None:
        self.current = current
        self.clock = clock
        self.backoff = backoff
        self.blocked = blocked
        self.stalled = stalled
        self.streams = streams
        self.trading_states = trading_states  # shown, not a degradation: a halt is chosen
        self.notify = notify
        # account → {"ok", "checked_at", "error", "differences"} of the last reconciliation
        self.broker_health: dict[str, dict[str, Any]] = {}
        # account → (loop time of the next reconnection attempt, the delay that led to it)
        self.reconnect: dict[str, tuple[float, float]] = {}

    def checked(self, account: str) -> dict[str, Any]:
        """The broker answered: it is ok as of now. Answers its entry, to add differences to."""
        health = self.broker_health.setdefault(account, {"differences": []})
        health.update(ok=True, error=None, checked_at=self.clock().isoformat())
        return health

    def failed(self, account: str, error: BrokerError) -> None:
        log.error("broker %s: %s", account, error)
        if account not in self.reconnect:  # it was up: told once, not at every retry
            text = f'account "{account}": the broker is down: {error}; retrying with back-off'
            self.notify(NotifyKind.BROKER, f"account {account}", text)
        health = self.broker_health.setdefault(account, {"differences": []})
        health.update(ok=False, error=str(error), checked_at=self.clock().isoformat())
        first, longest = self.backoff
        _, delay = self.reconnect.get(account, (0.0, first / 2))
        delay = min(delay * 2, longest)  # 1, 2, 4 … 60 s
        self.reconnect[account] = (asyncio.get_running_loop().time() + delay, delay)

    def forget(self, account: str) -> None:
        """An account a reload removed: nothing watches it any more."""
        self.reconnect.pop(account, None)
        self.broker_health.pop(account, None)

    async def reconnect_due(self, reconcile: Callable[[str], Awaitable[None]]) -> None:
        """Reconnect the brokers whose backoff has run out; a success reconciles them at once
        (`reconcile` queues it, and proves the link works), a failure doubles the wait."""
        now = asyncio.get_running_loop().time()
        for account, (due, _) in list(self.reconnect.items()):
            if due > now:
                continue
            try:
                await self.current.brokers[account].connect()
                await reconcile(account)
            except BrokerError as e:
                self.failed(account, e)
                continue
            log.info("broker %s: reconnected", account)
            del self.reconnect[account]
            text = f'account "{account}": the broker is back up (reconnected and reconciled)'
            self.notify(NotifyKind.BROKER, f"account {account}", text)

    def report(self) -> dict[str, Any]:
        """What /healthz and `tradepipe status` report: each broker's last check (`state`: ok,
        degraded when REST answers but its order stream is down, down), the blocks, and the
        trading states in force (SPEC §13: a halt is shown, it does not make the daemon
        degraded)."""
        brokers = {name: dict(detail) for name, detail in self.broker_health.items()}
        for name, stream in self.streams().items():
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
            "trading_states": self.trading_states(),
        }
