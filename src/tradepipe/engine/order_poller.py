"""Order polling while a stream is down: a broker's order events are the fast path to a fill,
never the only one.

An adapter whose order events come over a stream of their own (Alpaca's `trade_updates`)
reports that stream's health (`brokers.base.stream_health`). While it does not listen — never
connected, dropped, reconnecting with backoff — events are lost, not queued, and an order the
broker filled would stay "accepted" in the journal. So meanwhile, every `interval` seconds, the
account's working orders are asked for over REST: one `open_orders()` listing, then
`get_order` for at most `lookups` of the journaled orders it no longer lists (filled, canceled,
expired), in turn. What the broker says goes through the path a streamed event takes (the
engine's listener: journaled in the ticker's lane, never moved back from final). Once the stream
listens again the adapter re-syncs what it missed and the polling stops.

At most 1 + `lookups` broker calls per round and account: with the defaults (every 2 s, 4
lookups) an Alpaca account makes at most 2.5 calls a second (a bracket leg Alpaca named
itself costs a second request), within its 200 a minute. Brokers without such a stream are
never polled here: the paper broker has none, ccxt polls its own orders (and spends its
exchange's request budget doing so), and IB's one socket carries orders and events alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradepipe.brokers.base import Broker, OrderListener, stream_health
from tradepipe.core.reconcile import orders_to_look_up
from tradepipe.errors import BrokerError
from tradepipe.journal import Journal

log = logging.getLogger(__name__)

POLL_INTERVAL = 2.0  # seconds between rounds while a stream is down
LOOKUPS_PER_ROUND = 4  # orders asked for one by one per round and account


@dataclass(slots=True)
class _Polling:
    """One account's polling, while its stream is down."""

    polled_at: datetime | None = None
    error: str | None = None
    last_id: int = 0  # the journal id of the order looked up last: the next round goes on


class OrderPoller:
    def __init__(
        self,
        journal: Journal,
        brokers: Mapping[str, Broker],
        listener: Callable[[str], OrderListener],
        clock: Callable[[], datetime],
        *,
        interval: float = POLL_INTERVAL,
        lookups: int = LOOKUPS_PER_ROUND,
    ) -> None:
        if interval <= 0 or lookups < 1:
            raise ValueError(
                f"order polling needs an interval > 0 s and ≥ 1 lookup per round"
                f" (got {interval} s, {lookups})"
            )
        self.journal = journal
        self.brokers = brokers
        self.interval = interval
        self.lookups = lookups
        self._listener = listener  # the engine's, per account (as each broker's stream has)
        self._clock = clock
        self._polling: dict[str, _Polling] = {}  # accounts whose stream is down

    async def run(self) -> None:
        """Poll until cancelled: each account whose stream is down, every `interval`."""
        while True:
            await asyncio.sleep(self.interval)
            for account in list(self.brokers):  # read afresh: a reload may change the accounts
                try:
                    await self.poll(account)
                except Exception:  # a bug must not end the polling of every account
                    log.exception("polling the orders of %s", account)

    async def poll(self, account: str) -> None:
        """One round for one account, if its stream is down."""
        broker = self.brokers.get(account)
        health = stream_health(broker)
        if broker is None or health is None:
            self._polling.pop(account, None)
            return
        if health.up:
            if self._polling.pop(account, None) is not None:
                log.info("%s: order stream listening again; polling stops", account)
            return
        polling = self._polling.get(account)
        if polling is None:
            polling = self._polling[account] = _Polling()
            log.warning(
                "%s: order stream down (%s); polling working orders every %g s",
                account,
                health.reason,
                self.interval,
            )
        try:
            await self._round(account, broker, polling)
        except BrokerError as e:
            if str(e) != polling.error:
                log.warning("%s: polling orders: %s", account, e)
            polling.error = str(e)
        else:
            polling.error = None
        polling.polled_at = self._clock()

    async def _round(self, account: str, broker: Broker, polling: _Polling) -> None:
        working = self.journal.working_orders(account)
        if not working:
            return
        rows = {o["client_order_id"]: o for o in working}
        listed = await broker.open_orders()
        for state in listed:
            row = rows.get(state.client_order_id)
            if row is not None and (
                state.status != row["status"]
                or state.filled_quantity != Decimal(row["filled_quantity"])
            ):
                self._listener(account)(state)
        gone = [rows[cid] for cid in orders_to_look_up(working, listed)]
        # In turn: a round goes on after the order the last one asked for, so each is reached.
        batch = [o for o in gone if o["id"] > polling.last_id]
        batch = (batch + [o for o in gone if o["id"] <= polling.last_id])[: self.lookups]
        for row in batch:
            polling.last_id = row["id"]
            found = await broker.get_order(row["client_order_id"], ticker=row["ticker"])
            if found is not None:  # not found: reconciliation settles it, after its grace
                self._listener(account)(found)

    def health(self) -> dict[str, dict[str, Any]]:
        """Each account with an order stream: is it up, since when, why not, and the polling
        that stands in for it (the `stream` object of /healthz and `tradepipe status`)."""
        report: dict[str, dict[str, Any]] = {}
        for account, broker in list(self.brokers.items()):
            health = stream_health(broker)
            if health is None:
                continue
            polling = None if health.up else self._polling.get(account)
            polled_at = polling.polled_at if polling else None
            report[account] = {
                "up": health.up,
                "since": health.since.isoformat() if health.since else None,
                "reason": health.reason,
                "polling": not health.up,
                "poll_interval": self.interval,
                "polled_at": polled_at.isoformat() if polled_at else None,
                "poll_error": polling.error if polling else None,
            }
        return report
