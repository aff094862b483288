"""A local HTTP receiver for Apprise's `json://` targets: a real aiohttp server in a thread of
the test process, recording every message it is sent (or, `hang=True`, taking each request and
never answering)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from aiohttp import web

from tests.helpers import free_port

# A secret in the target's path: it must appear in no log line, no answer, no error.
SECRET_PATH = "CANARY-s3cr3t-path"


class Receiver:
    def __init__(self, *, hang: bool = False, status: int = 200) -> None:
        self.hang = hang
        self.status = status
        self.port = free_port()
        self.messages: list[dict[str, Any]] = []
        self.requests = 0  # requests taken (answered or not)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook-{SECRET_PATH}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._release = asyncio.Event()

        async def handle(request: web.Request) -> web.Response:
            self.requests += 1
            body = await request.read()
            if self.hang:
                await self._release.wait()  # never, until the receiver stops
                return web.Response(status=503)
            self.messages.append(json.loads(body))
            return web.Response(status=self.status, text="ok")

        app = web.Application()
        app.router.add_post("/{path:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> Receiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._runner is not None
            self._release.set()
            await self._runner.shutdown()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def wait(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The messages once at least `count` arrived; AssertionError naming what did not."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(self.messages)} notification(s) arrived, {count} awaited:"
                    f" {self.messages}"
                )
            time.sleep(0.02)
        return list(self.messages)


def notify_table(*receivers: Receiver, events: list[str] | None = None) -> str:
    kinds = f"events = {json.dumps(events)}\n" if events is not None else ""
    return "".join(f'\n[[notify]]\nurl = "{r.url}"\n{kinds}' for r in receivers)
