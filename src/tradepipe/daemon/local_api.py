"""The daemon's local API: `POST /api/<verb>` with the daemon's bearer token calls one verb of the
Operator (engine/operator.py) while the daemon owns the journal; the CLI's DaemonClient
(daemon/client.py) is its only caller. Answers are the verb's dict plus `"ok": true`, or the
webhook's error shape."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from tradepipe.core.trading_states import TradingState
from tradepipe.daemon.webhook import _cause, error_body
from tradepipe.engine.halting import scope_from
from tradepipe.engine.operator import OperatorApi
from tradepipe.errors import JournalError
from tradepipe.journal import Journal

Route = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def api_routes(operator: OperatorApi) -> dict[str, Route]:
    """The operator's verbs by API path, each reading the JSON payload DaemonClient sends."""
    return {
        "/api/status": lambda p: operator.status(),
        "/api/notify/test": lambda p: operator.notify_test(),
        "/api/risk": lambda p: operator.risk(),
        "/api/replay": lambda p: operator.replay(int(p["signal_id"]), bool(p["execute"])),
        "/api/flatten": lambda p: operator.flatten(p.get("account"), p.get("ticker")),
        "/api/review": lambda p: operator.review(int(p["delivery_id"]), bool(p["approve"])),
        "/api/paper/quote": lambda p: operator.paper_quote(
            p["account"], p["ticker"], Decimal(str(p["price"]))
        ),
        "/api/halt": lambda p: operator.halt(
            scope_from(p["scope"], p.get("name")), TradingState(p["state"]), str(p["reason"])
        ),
        "/api/resume": lambda p: operator.resume(scope_from(p["scope"], p.get("name"))),
        "/api/paper/chain": lambda p: operator.paper_chain(
            p["account"], p["underlying"], str(p["text"])
        ),
    }


def add_local_api(
    app: web.Application,
    api_token: str,
    operator: OperatorApi,
    journal: Journal,
    body_timeout: float,
) -> None:
    """The local API the CLI's acting commands use while a daemon owns the journal."""

    def authorised(request: web.Request) -> None:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        # Header text arrives with undecodable bytes as surrogates: compare it as bytes.
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), api_token.encode()):
            raise web.HTTPUnauthorized(
                text=json.dumps(error_body("unauthorized", "bad API token")),
                content_type="application/json",
            )

    def endpoint(act: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            authorised(request)
            try:
                async with asyncio.timeout(body_timeout):
                    payload = json.loads(await request.read())
            except TimeoutError:
                return web.json_response(
                    error_body("body-timeout", f"no whole body within {body_timeout:g} s"),
                    status=408,
                )
            except (ValueError, RecursionError, RequestPayloadError, HttpProcessingError) as e:
                body = error_body("malformed-json", f"the body is not JSON ({_cause(e)})")
                return web.json_response(body, status=400)
            try:
                answer, status = {"ok": True, **await act(payload)}, 200
            except Exception as e:  # the CLI shows the message; the daemon keeps running
                answer, status = error_body("failed", str(e)), 400
            try:  # what the command journaled is on disk before the CLI hears of it
                await journal.durable()
            except JournalError as e:
                answer, status = error_body("journal-unavailable", str(e)), 503
            return web.json_response(answer, status=status)

        return handle

    for path, act in api_routes(operator).items():
        app.router.add_post(path, endpoint(act))
