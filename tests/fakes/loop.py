"""What every fake broker server shares: it serves on 127.0.0.1 from its own thread and event
loop, so the test (and a blocking SDK such as alpaca-py) can talk to it from anywhere, and its
state is only touched on its loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Self


class OwnLoop:
    """Subclasses implement `_start()` (bind, set `self.port`) and `_stop()` (close)."""

    thread_name = "fake-broker"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=self.thread_name, daemon=True
        )
        self._thread.start()
        self._call(self._start)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        try:
            self._call(self._stop)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._loop = None

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run `function` (plain or async) on the fake's loop and answer its result."""
        assert self._loop is not None
        if threading.current_thread() is self._thread:  # already there: a plain call
            return function(*args)

        async def run() -> Any:
            result = function(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
