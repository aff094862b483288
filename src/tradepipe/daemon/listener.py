"""The listener's bounds (SPEC §11): what one client can hold, and how long.

A connection must deliver a complete request head within `HEAD_TIMEOUT` of opening (or of its
previous answer; the same timer is the keep-alive idle timeout), a body within `BODY_TIMEOUT`
(the webhook's own read, server.py), and at most `max_connections` are open at once: past the
cap the connection idle the longest (waiting for a request head) is closed, so a thousand idle or
half-sent connections cannot keep a real alert or `/healthz` out. The cap stays under the
process's descriptor limit, so `accept()` never runs out of descriptors.

Malformed HTTP is answered 4xx in the webhook's one JSON error shape and logged as one line that
names the problem, never the request's bytes (they may carry a passphrase).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 10.0  # seconds from opening, or from the last answer, to a complete request head
BODY_TIMEOUT = 10.0  # seconds to read a whole body, once its head has arrived
MAX_CONNECTIONS = 1024
# Descriptors kept for everything but client sockets (journal, brokers, logs), plus what the
# count lags by: asyncio accepts up to `backlog` sockets per turn of the loop and counts them here
# two turns later, and an evicted socket is closed one turn after its eviction.
BACKLOG = 128
RESERVED_DESCRIPTORS = 128 + 3 * BACKLOG
MAX_LINE_SIZE = 8190  # request line (the URL carries the token); aiohttp's default
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 32  # TradingView sends about ten; each may hold MAX_FIELD_SIZE until the head ends
# After answering a request whose body was not read to its end (a 408, an unknown token), aiohttp
# keeps reading it so the client sees the answer before the close: briefly, not its 10 s.
LINGERING_TIME = 1.0


def connection_cap(wanted: int = MAX_CONNECTIONS) -> int:
    """The cap, lowered to fit the descriptor limit this process runs under."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(8, min(wanted, soft - RESERVED_DESCRIPTORS))


class BoundedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, answering and logging bad HTTP our way."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer has begun: the connection is broken
            raise ConnectionError("the answer was already being sent")
        if status >= 500:
            # Our bug, not the client's: the traceback is for us (after routing and auth).
            log.error("internal error answering a request", exc_info=exc)
            body = _error("internal-error", "the server failed to handle this request")
        else:
            problem = _describe(exc)
            log.warning("bad HTTP request from %s: %s", request.remote, problem)
            body = _error("bad-request", f"malformed HTTP request: {problem}")
        response = web.json_response(body, status=status)
        response.force_close()
        return response

    # asyncio's Protocol.eof_received returns bool | None (True keeps the transport half-open);
    # aiohttp's RequestHandler declares None, so its stub narrows the protocol's contract.
    def eof_received(self) -> bool:  # type: ignore[override]
        # A half-close: the client has sent all it will. A complete request still gets its
        # answer (aiohttp closed at once, unanswered); a body cut short fails now, not after
        # the body timeout; then the connection closes.
        if self._parser is not None:
            try:
                self._parser.feed_eof()
            except HttpProcessingError as e:
                payload = self._unfinished_payload()
                if payload is not None:
                    payload.set_exception(e)
        # Busy from the moment a request is parsed until its handler waits for the next one.
        waiting = self._waiter is not None and not self._waiter.done()
        if not self._messages and (self._request_count == 0 or waiting):
            return False  # nothing to answer: asyncio closes the transport
        self._close = True  # answer, then close (close() would cancel the waiting handler)
        return True

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages:  # kept: between parsing and handling a request is on no list
            self._latest_payload = self._messages[-1][1]

    def _unfinished_payload(self) -> Any:
        payload = getattr(self, "_latest_payload", None)
        return None if payload is None or payload.is_eof() else payload

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        # aiohttp logs a broken body (bad chunking, bogus Content-Encoding) with a traceback
        # whose message quotes the raw bytes; one line naming the problem is enough.
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError | RequestPayloadError):
            log.warning("bad HTTP request body: %s", _describe(exc))
            return
        super().log_exception(*args, **kwargs)


def _describe(exc: BaseException | None) -> str:
    """What was wrong, without quoting the request (which may carry a secret)."""
    if isinstance(exc, LineTooLong):
        return f"a request line or header is longer than the limit ({MAX_FIELD_SIZE} bytes)"
    if exc is None:
        return "unreadable request"
    return type(exc).__name__


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "message": message, "errors": []}


class BoundedServer(web.Server):
    """aiohttp's server with a connection cap: at the cap, the longest-idle connection goes."""

    def __init__(self, *args: Any, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        # Open connections, oldest first; a closed one leaves at once (aiohttp's own table
        # keeps it until its task ends).
        self._open: dict[RequestHandler, None] = {}

    def __call__(self) -> RequestHandler:
        return BoundedRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._open[handler] = None
        if len(self._open) > self.max_connections:
            self._evict(handler)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._open.pop(handler, None)
        super().connection_lost(handler, exc)

    def _evict(self, newcomer: RequestHandler) -> None:
        for handler in self._open:
            # Waiting for a request head (idle keep-alive, or a head still trickling in).
            waiter = handler._waiter
            if handler is not newcomer and waiter is not None and not waiter.done():
                break
        else:  # every other connection is mid-request: the newcomer waits for none of them
            handler = newcomer
        del self._open[handler]
        handler.force_close()

    @property
    def open_connections(self) -> int:
        return len(self._open)


class BoundedRunner(web.AppRunner):
    """An AppRunner whose server is bounded; use with `site()` below."""

    def __init__(
        self, app: web.Application, *, max_connections: int | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("keepalive_timeout", HEAD_TIMEOUT)
        kwargs.setdefault("max_line_size", MAX_LINE_SIZE)
        kwargs.setdefault("max_field_size", MAX_FIELD_SIZE)
        kwargs.setdefault("max_headers", MAX_HEADERS)
        kwargs.setdefault("lingering_time", LINGERING_TIME)
        super().__init__(app, **kwargs)
        self.max_connections = max_connections or connection_cap()

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return BoundedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            max_connections=self.max_connections,
            **plain._kwargs,
        )


def site(runner: web.AppRunner, host: str, port: int) -> web.TCPSite:
    return web.TCPSite(runner, host, port, backlog=BACKLOG)
