"""Alpaca's `trade_updates` websocket of one account: started, stopped, and its health (listening
or not, since when, why not). alpaca-py reconnects by itself, only logging; this watches it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from alpaca.trading.stream import TradingStream

from tradepipe.brokers.base import StreamHealth
from tradepipe.errors import BrokerError

log = logging.getLogger(__name__)

STREAM_PATH = "/stream"  # trade_updates, beside the trading API (alpaca-py's BaseURL)


def stream_url_for(base_url: str | None) -> str | None:
    """The `trade_updates` websocket of a trading API address, as Alpaca serves it: the same
    host and path, ws / wss, plus /stream (`https://paper-api.alpaca.markets` →
    `wss://paper-api.alpaca.markets/stream`). None without one: alpaca-py's own."""
    if not base_url:
        return None
    scheme, rest = base_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{STREAM_PATH}"


class Stream(TradingStream):
    """alpaca-py's stream, telling us when it is listening (after every (re)connect), when it
    is not (a connection that failed or dropped: alpaca-py reconnects with backoff, only
    logging) and when the broker refused its credentials (it would otherwise retry forever)."""

    def __init__(
        self,
        *args: Any,
        on_listening: Callable[[], None],
        on_refused: Callable[[], None],
        on_down: Callable[[str], None],
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self._on_listening = on_listening
        self._on_refused = on_refused
        self._on_down = on_down

    async def _start_ws(self) -> None:
        try:
            await super()._start_ws()
        except Exception as e:
            self._on_down(f"cannot connect to {self._endpoint}: {type(e).__name__}: {e}"[:300])
            raise

    async def close(self) -> None:
        connected = self._ws is not None and self._running  # alpaca-py closes after any error
        await super().close()
        if connected:
            self._on_down(f"the connection to {self._endpoint} dropped")

    async def _auth(self) -> None:
        try:
            await super()._auth()
        except ValueError:
            self._on_refused()
            raise

    async def _dispatch(self, msg: dict) -> None:
        if msg.get("stream") == "listening":
            self._on_listening()
        await super()._dispatch(msg)


class TradeUpdates:
    """One account's stream: `start` it (once; again after it ended), `wait` for it to listen,
    read its `health`, `stop` it. Each update goes to `on_update`; `on_listening` runs after
    every (re)connect (the adapter re-syncs over REST)."""

    def __init__(
        self,
        name: str,
        factory: Callable[..., Stream],
        *,
        clock: Callable[[], datetime],
        timeout: float,
        on_update: Callable[[dict], Awaitable[None]],
        on_listening: Callable[[], None],
    ) -> None:
        self.name = name
        self._factory = factory
        self._clock = clock
        self._timeout = timeout
        self._on_update = on_update
        self._then = on_listening
        self._stream: Stream | None = None
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._refused = False
        # The stream's health: since when it listens or not, and why not (StreamHealth).
        self._since: datetime | None = None
        self._why = "not started"
        self._news = asyncio.Event()  # the stream listens, or was refused

    def start(self) -> bool:
        """Start the stream unless it runs; True if it was started now."""
        if self._task is not None and not self._task.done():
            return False
        self._refused = self._listening = False
        self._news.clear()
        self._went_down("connecting")
        self._stream = self._factory(
            on_listening=self._on_listening,
            on_refused=self._on_refused,
            on_down=self._on_down,
        )
        self._stream.subscribe_trade_updates(self._on_update)
        self._task = asyncio.create_task(
            self._stream._run_forever(), name=f"alpaca stream {self.name}"
        )
        return True

    async def wait(self) -> None:
        """Wait (up to `timeout`) for the stream to listen. One that does not is no failure: it
        keeps trying and reports itself down; refused credentials raise BrokerError."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._news.wait(), timeout=self._timeout)
        if self._refused:  # alpaca-py would retry forever, only logging
            await self.stop()
            raise BrokerError(
                f"alpaca account {self.name}: the trade_updates stream refused the"
                " credentials; check the account's key and secret"
            )
        if not self._listening:  # REST works: orders go out, the engine polls their fate
            log.warning(
                "alpaca account %s: the trade_updates stream is not listening after %g s (%s);"
                " it keeps trying, and working orders are polled over REST meanwhile",
                self.name,
                self._timeout,
                self._why,
            )

    @property
    def health(self) -> StreamHealth:
        if self._listening:
            return StreamHealth(up=True, since=self._since)
        return StreamHealth(up=False, since=self._since, reason=self._why)

    def _went_down(self, why: str) -> None:
        if self._listening or self._since is None:
            self._since = self._clock()
        if self._listening:
            log.warning("alpaca account %s: trade_updates stream down: %s", self.name, why)
        self._listening, self._why = False, why

    def _on_down(self, why: str) -> None:
        if self._stream is not None:  # not a stream being stopped
            self._went_down(why)

    def _on_listening(self) -> None:
        if not self._listening:
            self._since = self._clock()
        self._listening, self._refused = True, False
        self._news.set()
        log.info("alpaca account %s: trade_updates stream listening; re-syncing", self.name)
        self._then()

    def _on_refused(self) -> None:
        self._went_down("the broker refused the credentials")
        self._listening, self._refused = False, True
        self._news.set()
        log.error("alpaca account %s: the trade_updates stream refused the credentials", self.name)

    async def stop(self) -> None:
        stream, task = self._stream, self._task
        self._stream = self._task = None
        self._went_down("stopped")
        self._news.clear()
        if stream is not None:
            await stream.stop_ws()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.close()
