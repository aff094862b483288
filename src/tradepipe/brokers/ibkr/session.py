"""The API socket to TWS / IB Gateway: connecting, IB's connectivity codes, the one SDK-exception
mapper, and waiting for IB's packets (never a busy-wait)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import ib_async

from tradepipe.brokers.base import DisconnectListener
from tradepipe.errors import BrokerError, BrokerUnavailable, OrderRejected

log = logging.getLogger(__name__)

# IB's message codes (https://interactivebrokers.github.io/tws-api/message_codes.html), named by
# what the adapter does with them. The order-level codes (202 / 10148 "Order Canceled", not a
# rejection) are read from an order's log in `orders.CANCELED_CODES`.
# 1100 "Connectivity between IB and TWS has been lost": every request waits for 1101 / 1102.
CONNECTIVITY_LOST_CODES = frozenset({1100})
# 1101 "Connectivity restored - data lost" (subscriptions are gone: resubscribe, then re-sync);
# 1102 "Connectivity restored - data maintained" (re-sync: orders may have moved meanwhile).
CONNECTIVITY_RESTORED_CODES = frozenset({1101, 1102})
DATA_LOST_CODES = frozenset({1101})

# What the startup sync fetches: open orders and today's executions restore ib_async's state
# after a reconnect; positions and the account's updates feed `positions()` / `account()`.
# Completed orders are asked for when an id is looked up and by the re-sync after the sync
# (apiOnly; a failure there does not fail the connect), and sub-account updates only matter
# for advisor accounts.
STARTUP_FETCH = (
    ib_async.StartupFetch.POSITIONS
    | ib_async.StartupFetch.ORDERS_OPEN
    | ib_async.StartupFetch.ACCOUNT_UPDATES
    | ib_async.StartupFetch.EXECUTIONS
)

DISCONNECTED = (
    "IB Gateway is not connected (its daily restart is around 23:45–00:45 ET; outside that"
    " window check that TWS / Gateway runs with the API enabled on {where}); tradepipe"
    " reconnects on its own"
)


class Session:
    """One `ib_async.IB` and what its link to IB is: connected, the link behind the Gateway lost
    (1100) or restored (1101 / 1102, then `resync`), dropped by itself (the disconnect
    listener). `lock`: ib_async keys some requests by name, so they go one at a time."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        client_id: int,
        account: str | None,
        timeout: float,
        resync: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self.host, self.port, self.client_id = host, port, client_id
        self.account = account
        self.timeout = timeout
        self.ib = ib_async.IB()
        self.lock = asyncio.Lock()
        self.link_lost: str | None = None  # error 1100 until 1101 / 1102
        self._resync = resync
        self._has_connected = False
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._disconnect_listener: DisconnectListener | None = None
        self.ib.errorEvent += self._on_error
        self.ib.disconnectedEvent += self._on_disconnected

    # -- errors, in one place ------------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Every ib_async / socket exception becomes one of ours, named for what to do."""
        try:
            yield
        except BrokerError:
            raise
        except TimeoutError as e:
            raise BrokerUnavailable(
                f"IB {self.name}: no answer within {self.timeout:g} s while {doing}"
            ) from e
        except (ConnectionError, OSError) as e:
            raise BrokerUnavailable(f"IB {self.name}: {self.down()} ({doing}: {e})") from e
        except ib_async.RequestError as e:
            raise OrderRejected(f"IB {self.name}: {e.message}") from e

    def down(self) -> str:
        return DISCONNECTED.format(where=f"{self.host}:{self.port}")

    def link(self) -> None:
        """Raise BrokerUnavailable unless the socket is up and IB's link behind it too."""
        if not self.ib.isConnected():
            raise BrokerUnavailable(f"IB {self.name}: {self.down()}")
        if self.link_lost is not None:
            raise BrokerUnavailable(f"IB {self.name}: {self.link_lost}")

    async def ask(self, doing: str, request: Any) -> Any:
        with self.errors(doing):
            return await asyncio.wait_for(request, self.timeout)

    async def changed(self, deadline: float) -> None:
        """Wait for IB's next packet (ib_async's `updateEvent`, emitted once a batch of packets
        has been handled), the socket closing, or `deadline` (the loop's clock): callers
        re-check what they wait for after each, instead of polling."""
        poked = asyncio.Event()

        def poke(*_: object) -> None:
            poked.set()

        self.ib.updateEvent += poke
        self.ib.disconnectedEvent += poke
        try:
            remaining = deadline - asyncio.get_running_loop().time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poked.wait(), max(remaining, 0))
        finally:
            self.ib.updateEvent -= poke
            self.ib.disconnectedEvent -= poke

    # -- life cycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        if self.ib.isConnected():
            return
        # Under the lock: ib_async answers reqOpenOrders (the startup sync) and reqAllOpenOrders
        # (a lookup) under one key, so they must not overlap.
        async with self.lock:
            if self.ib.isConnected():  # another caller connected meanwhile
                return
            with self.errors(f"connecting to {self.host}:{self.port}"):
                await self.ib.connectAsync(
                    self.host,
                    self.port,
                    clientId=self.client_id,
                    timeout=self.timeout,
                    account=self.account or "",
                    raiseSyncErrors=True,
                    fetchFields=STARTUP_FETCH,
                )
        self.link_lost = None
        if self.account and self.account not in self.ib.managedAccounts():
            accounts = ", ".join(self.ib.managedAccounts())
            self.ib.disconnect()
            raise BrokerError(
                f"IB {self.name}: account {self.account} is not managed by this login"
                f" (it manages {accounts})"
            )
        # What happened while we were away; a new process was away too: IB re-sends the
        # commission reports of the day's executions with them, and ib_async tells one only
        # for an order it holds — one done before this connection only once the re-sync has
        # asked IB for the completed orders. The fee of a fill journaled before a restart
        # comes that way (`Recorder.feeless`).
        try:
            await self._resync()
        except BrokerError as e:
            if self._has_connected:
                raise
            # The first connect did without it before: the orders' states are settled by the
            # engine's own lookups; only a late fee waits for the next re-sync.
            log.warning("IB %s: re-sync after connecting failed: %s", self.name, e)
        self._has_connected = True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._closing = True
        try:
            self.ib.disconnect()
        finally:
            self._closing = False

    def on_disconnect(self, listener: DisconnectListener) -> None:
        self._disconnect_listener = listener

    def _on_disconnected(self) -> None:
        if self._closing:
            return
        log.warning("IB %s: disconnected from %s:%s", self.name, self.host, self.port)
        if self._disconnect_listener is not None:
            self._disconnect_listener(
                f"IB {self.name}: the connection to {self.host}:{self.port} dropped"
                " (IB Gateway restarts daily around 23:45-00:45 ET); reconnecting"
            )

    def _on_error(self, request_id: int, code: int, text: str, contract: Any) -> None:
        if code in CONNECTIVITY_LOST_CODES:
            self.link_lost = f"IB Gateway lost its connection to IB (error {code}: {text})"
        elif code in CONNECTIVITY_RESTORED_CODES:
            self.link_lost = None
            task = asyncio.get_running_loop().create_task(self._restored(code))
            self._tasks.add(task)  # kept: a task nobody holds may be collected mid-run
            task.add_done_callback(self._tasks.discard)

    async def _restored(self, code: int) -> None:
        try:
            if code in DATA_LOST_CODES and self.account:
                await self.ask("resubscribing", self.ib.reqAccountUpdatesAsync(self.account))
            async with self.lock:
                await self.ask("re-syncing open orders", self.ib.reqOpenOrdersAsync())
            await self._resync()
        except BrokerError as e:
            log.error("IB %s: re-sync after error %s failed: %s", self.name, code, e)
