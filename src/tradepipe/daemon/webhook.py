"""The webhook listener (SPEC §3): journal first, answer second, trade after.

`POST /webhook/{token}` checks the request, commits one signal row with `synchronous=FULL` and only
then answers 200; planning and broker calls run after the answer (TradingView gives up after
3 s). Every rejection is answered with one JSON shape and journaled, except unknown tokens and
rate-limited floods. What a request must pass is `intake`; the local API under `/api/`
(daemon/local_api.py) lets the CLI act through the daemon.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import CONTENT_TYPE_LATEST

from tradepipe.config.model import Config, StrategyConfig
from tradepipe.core.auth import client_address, is_allowed, verify_signature
from tradepipe.core.notify import NotifyKind
from tradepipe.core.ratelimit import RateLimiter
from tradepipe.core.redaction import scrub
from tradepipe.core.signal import FieldError, ParsedSignal, Signal, signal_to_json
from tradepipe.daemon.intake import (
    AUTH_FAILURES,
    MAX_BODY,
    Guards,
    Rejection,
    check_age,
    clock_skew_warning,
    error_body,
    parse_body,
    read_body,
    redacted,
)
from tradepipe.daemon.intake import cause as _cause
from tradepipe.daemon.listener import BODY_TIMEOUT
from tradepipe.engine import Engine
from tradepipe.engine.operator import OperatorApi
from tradepipe.journal import STORAGE_ERRORS, Journal

log = logging.getLogger(__name__)

# Imported from here by the daemon, the local API and the tests.
__all__ = ["ENGINE", "MAX_BODY", "WEBHOOK", "Webhook", "_cause", "error_body", "make_app"]

DEDUPE_KEY_TTL = timedelta(hours=24)


ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)


class Webhook:
    """The handler and the per-strategy state it keeps (rate limits)."""

    def __init__(
        self,
        config: Config,
        journal: Journal,
        engine: Engine,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.body_timeout = body_timeout
        self.journal = journal
        self.engine = engine
        self.clock = clock
        self.monotonic = monotonic
        self.limiters: dict[str, RateLimiter] = {}
        self.failed_auth: dict[str, RateLimiter] = {}
        self.use_config(config)

    def use_config(self, config: Config) -> None:
        """Answer with `config`'s strategies from now on (at start, and on SIGHUP). One step
        for the event loop: no request sees half of it. A strategy whose limits did not change
        keeps its limiters, so a reload hands no flood a fresh budget."""

        def limiter(
            kept: dict[str, RateLimiter], name: str, strategy: StrategyConfig
        ) -> RateLimiter:
            old = kept.get(name)
            limits = (strategy.rate_limit_per_minute, strategy.rate_limit_per_hour)
            if old is not None and (old.per_minute, old.per_hour) == limits:
                return old
            return RateLimiter(*limits)

        self.config = config
        self.limiters = {
            name: limiter(self.limiters, name, s) for name, s in config.strategies.items()
        }
        # Requests that fail authentication have their own budget: someone holding only a
        # leaked URL can neither use up the real signals' limit nor flood the journal.
        self.failed_auth = {
            name: limiter(self.failed_auth, name, s) for name, s in config.strategies.items()
        }
        # Parsed once here: the handler runs for every request.
        self.guards = {
            name: Guards(s.allowed_networks, s.trusted_proxy_networks, s.webhook_key)
            for name, s in config.strategies.items()
        }

    async def handle(self, request: web.Request) -> web.Response:
        started = self.monotonic()
        try:
            response = await self._handle(request)
            self.engine.metrics.ack_seconds.observe(self.monotonic() - started)
            return response
        except STORAGE_ERRORS as e:
            # Not committed, so not acknowledged: the sender must retry (TradingView does not,
            # so the log says loudly what was refused and why).
            log.exception("journal write failed; the signal was NOT accepted")
            body = error_body("journal-unavailable", f"the journal could not be written: {e}")
            return _answer(503, body)

    async def _handle(self, request: web.Request) -> web.Response:
        received_at = self.clock()
        found = self.config.strategy_by_token(request.match_info["token"])
        if found is None:
            return _answer(404, error_body("unknown-token", "no strategy has this webhook URL"))
        name, strategy = found
        guards = self.guards[name]
        # Every X-Forwarded-For line, in order: a sender's own extra line must not hide behind
        # the first one (the proxy appends its hop to the last).
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", [])) or None
        source = client_address(request.remote, forwarded, guards.trusted_proxies)
        body = b""
        try:
            body = await self._read(request, name)
            if len(body) > MAX_BODY:
                raise Rejection(
                    413,
                    "payload-too-large",
                    f"the body is larger than {MAX_BODY} bytes (64 KiB)",
                    (FieldError("", f"body exceeds {MAX_BODY} bytes"),),
                    journal=False,
                )
            if not is_allowed(source, guards.allowed_ips):
                self._limit(self.failed_auth[name])
                raise Rejection(403, "ip-not-allowed", f"source address {source} is not allowed")
            if guards.webhook_key:
                problem = verify_signature(
                    guards.webhook_key, request.headers, body, received_at.timestamp()
                )
                if problem:
                    self._limit(self.failed_auth[name])
                    raise Rejection(401, "invalid-signature", problem)
            try:
                parsed = parse_body(body, strategy.passphrase)
            except Rejection as rejection:
                # A body that does not parse cannot have shown the passphrase: it spends the
                # failed-authentication budget, not the real signals' one.
                unproven = strategy.passphrase is not None and rejection.code == "malformed-json"
                failed = rejection.code in AUTH_FAILURES or unproven
                self._limit((self.failed_auth if failed else self.limiters)[name])
                raise
            self._limit(self.limiters[name])
            signal = parsed.signal
            assert signal is not None
            check_age(signal, strategy.max_signal_age, received_at)
            skew = clock_skew_warning(signal.time, received_at)
            if skew:
                log.warning("strategy %s: %s", name, skew)
                parsed = replace(parsed, warnings=(*parsed.warnings, skew))
            response, accepted = self._accept(
                name, strategy, body, parsed, source, received_at, request
            )
        except Rejection as rejection:
            response = self._reject(name, strategy, body, source, received_at, rejection)
            accepted = None
            if not rejection.journal:  # nothing written (a flood's 429): nothing to wait for
                return response
        # Something for this strategy was journaled: its silence alarm starts again.
        self.engine.notifier.heard(name, received_at)
        # An answer is only given for what is on disk, and only then may the engine trade on
        # it: handed over when the commit lands, even if this request is cancelled meanwhile.
        committed = self.journal.committed()
        if accepted is not None:
            committed.add_done_callback(partial(self._hand_over, accepted))
        await asyncio.shield(committed)
        return response

    def _hand_over(
        self, accepted: tuple[int, str, Signal], committed: asyncio.Future[None]
    ) -> None:
        if not committed.cancelled() and committed.exception() is None:
            self.engine.enqueue(*accepted)

    async def _read(self, request: web.Request, name: str) -> bytes:
        """The body, or a 4xx when it is broken or too slow (it cannot have authenticated, so
        it spends the failed-authentication budget)."""
        try:
            async with asyncio.timeout(self.body_timeout):
                return await read_body(request)
        except TimeoutError:
            self._limit(self.failed_auth[name])
            raise Rejection(
                408,
                "body-timeout",
                f"the body did not arrive within {self.body_timeout:g} s",
                (FieldError("", f"body incomplete after {self.body_timeout:g} s"),),
            ) from None
        except ConnectionError:  # the sender left mid-body: no one to answer, nothing to keep
            problem = "the sender closed the connection mid-body"
            raise Rejection(400, "body-incomplete", problem, journal=False) from None
        except (RequestPayloadError, HttpProcessingError) as e:
            self._limit(self.failed_auth[name])
            # The class names the problem; its message may quote the raw bytes.
            problem = f"the body could not be read ({_cause(e)})"
            raise Rejection(400, "unreadable-body", problem, (FieldError("", problem),)) from None

    def _limit(self, limiter: RateLimiter) -> None:
        broken = limiter.allow(self.monotonic())
        if broken:
            raise Rejection(429, "too-many-requests", f"rate limit: {broken}", journal=False)

    def _accept(
        self,
        name: str,
        strategy: StrategyConfig,
        body: bytes,
        parsed: ParsedSignal,
        source: str,
        received_at: datetime,
        request: web.Request,
    ) -> tuple[web.Response, tuple[int, str, Signal] | None]:
        """The answer, and the signal to hand to the engine once the journal has it on disk."""
        signal = parsed.signal
        assert signal is not None
        # A warning quotes what the body sent (an unknown key may be the passphrase itself).
        warnings = [scrub(warning, strategy.passphrase) for warning in parsed.warnings]
        dedupe_key = signal.id or request.headers.get("webhook-id")
        body_hash = hashlib.sha256(body).hexdigest()
        # The look-up is part of the insert (journal.record_new_signal): two copies cannot both
        # pass. An idempotency key is remembered for DEDUPE_KEY_TTL, a body for the window.
        if dedupe_key:
            dedupe, seen, since = "dedupe_key", dedupe_key, received_at - DEDUPE_KEY_TTL
        else:
            dedupe, seen = "body_hash", body_hash
            since = received_at - timedelta(seconds=float(strategy.dedupe_window))
        row = {
            "strategy": name,
            "received_at": received_at,
            "source": source,
            "body": redacted(
                body, strategy.passphrase, has_passphrase=signal.passphrase is not None
            ),
            "payload": json.dumps(signal_to_json(signal)),
            "ticker": signal.ticker,
            "action": signal.action,
            "warnings": warnings,
            "dedupe_key": dedupe_key,
            "body_hash": body_hash,
        }
        signal_id = self.journal.record_new_signal(
            dedupe, since, **row, status="accepted", http_status=200
        )
        if signal_id is None:
            original = self.journal.find_seen_signal(name, dedupe, seen, since)
            self.engine.metrics.signals.labels(name, "duplicate").inc()
            self.journal.record_signal(
                **row, status="duplicate", http_status=200, duplicate_of=original
            )
            log.info("signal %s for %s is a duplicate", original, name)
            answer = {"signal_id": original, "duplicate": True}
            return _answer(200, {"ok": True, **answer, "warnings": warnings}), None
        self.engine.metrics.signals.labels(name, "accepted").inc()
        answer = {"signal_id": signal_id, "duplicate": False}
        return (
            _answer(200, {"ok": True, **answer, "warnings": warnings}),
            (signal_id, name, signal),
        )

    def _reject(
        self,
        name: str,
        strategy: StrategyConfig,
        body: bytes,
        source: str,
        received_at: datetime,
        rejection: Rejection,
    ) -> web.Response:
        # Stored and shown as valid text, with no passphrase in it wherever it was echoed.
        secret = strategy.passphrase
        message = scrub(rejection.message, secret)
        errors = tuple(
            FieldError(scrub(e.field), scrub(e.message, secret)) for e in rejection.errors
        )
        answer = error_body(rejection.code, message, errors)
        self.engine.metrics.signals.labels(name, "rejected").inc()
        if rejection.journal:
            with self.journal.transaction():  # the rejection and its notification together
                signal_id = self.journal.record_signal(
                    strategy=name,
                    received_at=received_at,
                    source=source,
                    body=redacted(body, secret),
                    status="rejected",
                    http_status=rejection.status,
                    error=message,
                    errors=[{"field": e.field, "message": e.message} for e in errors],
                )
                text = (
                    f'strategy "{name}": signal {signal_id} rejected at the webhook'
                    f" ({rejection.status} {rejection.code}): {message}"
                )
                self.engine.notifier.notify(NotifyKind.FAILURE, f"signal {signal_id}", text)
            answer["signal_id"] = signal_id
        log.warning("signal for %s rejected (%s): %s", name, rejection.status, message)
        return _answer(rejection.status, answer)


WEBHOOK: web.AppKey[Webhook] = web.AppKey("webhook", Webhook)


def _answer(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


def make_app(
    config: Config,
    journal: Journal,
    engine: Engine,
    clock: Callable[[], datetime],
    *,
    api_token: str | None = None,
    actions: OperatorApi | None = None,
    body_timeout: float = BODY_TIMEOUT,
) -> web.Application:
    """The app factory: webhook, health and (with an api token) the CLI's local API."""
    webhook = Webhook(config, journal, engine, clock, body_timeout=body_timeout)
    app = web.Application(client_max_size=MAX_BODY + 1, middlewares=[_error_shape])
    app[ENGINE] = engine
    app[WEBHOOK] = webhook  # the daemon's reload swaps its config

    async def healthz(request: web.Request) -> web.Response:
        # Ready means serving; the detail says what is wrong with which broker, never hidden.
        return web.json_response({"ok": True, **engine.health()})

    app.router.add_post("/webhook/{token}", webhook.handle)
    app.router.add_get("/healthz", healthz)
    engine.metrics.watch(engine)
    app.router.add_get("/metrics", partial(_metrics, webhook))
    if api_token is not None and actions is not None:
        from tradepipe.daemon.local_api import add_local_api  # it uses this module's error shape

        add_local_api(app, api_token, actions, journal, body_timeout)
    return app


async def _metrics(webhook: Webhook, request: web.Request) -> web.Response:
    """Prometheus' text (SPEC §14): only for `Authorization: Bearer <[server].metrics_token>`,
    and not served at all (404) while no token is configured; never readable by someone who
    knows only a webhook URL. The token of now: a reload may set, change or remove it."""
    token = webhook.config.server.metrics_token
    if token is None:  # the very answer of a path that does not exist (_error_shape's)
        raise web.HTTPNotFound()
    given = request.headers.get("Authorization", "")
    # Header text arrives with undecodable bytes as surrogates: compare it as bytes.
    expected = f"Bearer {token}".encode()
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected):
        body = error_body("unauthorized", "GET /metrics needs Authorization: Bearer <token>")
        return web.json_response(body, status=401, headers={"WWW-Authenticate": "Bearer"})
    text = webhook.engine.metrics.text()
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def _error_shape(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own 4xx answers (unknown path, wrong method, body too large) in our shape."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400 or e.content_type == "application/json":
            raise
        code = re.sub(r"[^a-z]+", "-", (e.reason or "error").lower()).strip("-")
        headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        body = error_body(code, f"{e.status} {e.reason}: {request.method} {request.path}")
        return web.json_response(body, status=e.status, headers=headers)
