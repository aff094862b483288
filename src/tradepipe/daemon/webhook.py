"""The webhook listener (SPEC §3): journal first, answer second, trade after.

`POST /webhook/{token}` checks the request, commits one signal row with `synchronous=FULL` and only
then answers 200; planning and broker calls run after the answer (TradingView gives up after
3 s). Every rejection is answered with one JSON shape and journaled, except unknown tokens and
rate-limited floods. The local API under `/api/` (daemon/local_api.py) lets the CLI act through
the daemon.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from tradepipe.core.auth import Network, client_address, is_allowed, verify_signature
from tradepipe.core.ratelimit import RateLimiter
from tradepipe.core.redaction import redact_body, scrub
from tradepipe.core.signal import FieldError, ParsedSignal, Signal, parse_signal, signal_to_json
from tradepipe.daemon.listener import BODY_TIMEOUT
from tradepipe.engine import Engine
from tradepipe.errors import JournalError
from tradepipe.journal import Journal

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
DEDUPE_KEY_TTL = timedelta(hours=24)

AUTH_FAILURES = frozenset({"passphrase-required", "invalid-passphrase"})

ENGINE: web.AppKey[Engine] = web.AppKey("engine", Engine)


class Rejection(Exception):
    """A request we answer with a 4xx; journaled unless `journal` is False."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: tuple[FieldError, ...] = (),
        *,
        journal: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.journal = journal


def error_body(code: str, message: str, errors: tuple[FieldError, ...] = ()) -> dict[str, Any]:
    """The one JSON shape of every webhook error."""
    return {
        "ok": False,
        "code": code,
        "message": message,
        "errors": [{"field": e.field, "message": e.message} for e in errors],
    }


@dataclass(frozen=True, slots=True)
class Guards:
    """A strategy's optional authentication layers, parsed."""

    allowed_ips: tuple[Network, ...]
    trusted_proxies: tuple[Network, ...]
    webhook_key: bytes | None


class Webhook:
    """The handler and the per-strategy state it keeps (rate limits)."""

    def __init__(
        self,
        config: Any,
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

    def use_config(self, config: Any) -> None:
        """Answer with `config`'s strategies from now on (at start, and on SIGHUP). One step
        for the event loop: no request sees half of it. A strategy whose limits did not change
        keeps its limiters, so a reload hands no flood a fresh budget."""

        def limiter(kept: dict[str, RateLimiter], name: str, strategy: Any) -> RateLimiter:
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
        try:
            return await self._handle(request)
        except (sqlite3.Error, JournalError) as e:
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
                parsed = self._parse(body, strategy.passphrase)
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
            self._check_age(signal, strategy.max_signal_age, received_at)
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
                return await _read_body(request)
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

    def _parse(self, body: bytes, passphrase: str | None) -> ParsedSignal:
        try:
            # UTF-8 only, as the signal parser reads it (json.loads(bytes) would also take
            # UTF-16/32, which the parser and the redaction below do not).
            decoded: Any = json.loads(body.decode("utf-8").removeprefix("\ufeff"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            decoded = None
            parsed = parse_signal(body)
        else:
            if passphrase is not None:
                given = decoded.get("passphrase") if isinstance(decoded, dict) else None
                if given is None:
                    raise Rejection(401, "passphrase-required", "this strategy needs a passphrase")
                if not isinstance(given, str) or not hmac.compare_digest(
                    given.encode("utf-8", "surrogatepass"), passphrase.encode()
                ):
                    raise Rejection(403, "invalid-passphrase", "the passphrase does not match")
            parsed = parse_signal(decoded)
        if not parsed.ok:
            code = "malformed-json" if decoded is None else "invalid-payload"
            # A passphrase value never goes back out, not even inside an error message.
            parsed = ParsedSignal(
                None,
                tuple(
                    FieldError(e.field, "must be a string") if e.field == "passphrase" else e
                    for e in parsed.errors
                ),
                parsed.warnings,
            )
            problems = "; ".join(f"{e.field or 'body'}: {e.message}" for e in parsed.errors)
            raise Rejection(400, code, problems, parsed.errors)
        return parsed

    def _check_age(self, signal: Any, max_age: Decimal | None, now: datetime) -> None:
        if max_age is None or signal.time is None:
            return
        age = (now - signal.time).total_seconds()
        if age > float(max_age):
            raise Rejection(
                400,
                "stale-signal",
                f"the signal is {age:.0f} s old; max_signal_age is {max_age} s",
                (FieldError("time", f"older than max_signal_age {max_age} s (age {age:.0f} s)"),),
            )

    def _accept(
        self,
        name: str,
        strategy: Any,
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
        # No await between this look-up and the insert: two copies cannot both pass.
        if dedupe_key:
            original = self.journal.find_signal_by_key(
                name, dedupe_key, received_at - DEDUPE_KEY_TTL
            )
        else:
            window = timedelta(seconds=float(strategy.dedupe_window))
            original = self.journal.find_signal_by_body(name, body_hash, received_at - window)
        row = {
            "strategy": name,
            "received_at": received_at,
            "source": source,
            "body": _redacted(
                body, strategy.passphrase, has_passphrase=signal.passphrase is not None
            ),
            "payload": json.dumps(signal_to_json(signal)),
            "ticker": signal.ticker,
            "action": signal.action,
            "warnings": warnings,
            "dedupe_key": dedupe_key,
            "body_hash": body_hash,
        }
        if original is not None:
            self.journal.record_signal(
                **row, status="duplicate", http_status=200, duplicate_of=original
            )
            log.info("signal %s for %s is a duplicate", original, name)
            answer = {"signal_id": original, "duplicate": True}
            return _answer(200, {"ok": True, **answer, "warnings": warnings}), None
        signal_id = self.journal.record_signal(**row, status="accepted", http_status=200)
        answer = {"signal_id": signal_id, "duplicate": False}
        return (
            _answer(200, {"ok": True, **answer, "warnings": warnings}),
            (signal_id, name, signal),
        )

    def _reject(
        self,
        name: str,
        strategy: Any,
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
        if rejection.journal:
            answer["signal_id"] = self.journal.record_signal(
                strategy=name,
                received_at=received_at,
                source=source,
                body=_redacted(body, secret),
                status="rejected",
                http_status=rejection.status,
                error=message,
                errors=[{"field": e.field, "message": e.message} for e in errors],
            )
        log.warning("signal for %s rejected (%s): %s", name, rejection.status, message)
        return _answer(rejection.status, answer)


WEBHOOK: web.AppKey[Webhook] = web.AppKey("webhook", Webhook)


async def _read_body(request: web.Request) -> bytes:
    """The whole body, however many segments or chunks it arrives in, up to one byte past the
    limit (enough to know it is too large without reading a flood)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(16 * 1024):
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            break
    return b"".join(parts)


def _redacted(body: bytes, secret: str | None, *, has_passphrase: bool | None = None) -> str:
    """The body as text with any passphrase value blanked out: secrets never reach the journal.

    One that is not UTF-8 is not stored at all (its text cannot be searched)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(body)} bytes that are not UTF-8; not stored>"
    if has_passphrase is False and secret is None:
        return text  # parsed, and no passphrase in it: the hot path stops here
    try:
        decoded = json.loads(text.removeprefix("\ufeff"))
    except (ValueError, RecursionError):
        decoded = None
    return redact_body(text, secret, parsed=decoded)


def _cause(error: BaseException) -> str:
    """The name of what broke a body (aiohttp wraps it; its message quotes raw bytes)."""
    return type(error.__cause__ or error).__name__


def _answer(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


def make_app(
    config: Any,
    journal: Journal,
    engine: Engine,
    clock: Callable[[], datetime],
    *,
    api_token: str | None = None,
    actions: Any = None,
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
    if api_token is not None and actions is not None:
        from tradepipe.daemon.local_api import add_local_api  # it uses this module's error shape

        add_local_api(app, api_token, actions, journal, body_timeout)
    return app


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


CLOCK_SKEW_WARNING = 5.0  # seconds a signal's time may run ahead of ours before we say so


def clock_skew_warning(sent: datetime | None, received: datetime) -> str | None:
    """A signal stamped in the future means one of the two clocks is wrong; max_signal_age
    (and anyone reading the journal) depends on them agreeing."""
    if sent is None:
        return None
    ahead = (sent - received).total_seconds()
    if ahead <= CLOCK_SKEW_WARNING:
        return None
    return (
        f"the signal's time is {ahead:.0f} s ahead of this server's clock; check that NTP"
        " runs here (max_signal_age relies on the two clocks agreeing)"
    )
