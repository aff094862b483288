"""How the CLI's acting commands reach the engine: through the running daemon when there is one
(`DaemonClient`, one method per Operator verb, over the local API), on their own when there is
not (holding the journal's lock, the very same Operator or webhook code in-process). `send`
always goes through the webhook, the one door a signal comes in by."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tradepipe.core.model import FINISHED_SIGNAL
from tradepipe.core.trading_states import Scope, TradingState
from tradepipe.daemon.serve import (
    daemon_holds_lock,
    journal_lock,
    local_url,
    make_brokers,
    read_daemon_info,
    utc_now,
)
from tradepipe.engine import Engine, halting
from tradepipe.engine.operator import Operator, OperatorApi
from tradepipe.errors import DaemonUnavailable, TradepipeError
from tradepipe.journal import Journal

if TYPE_CHECKING:
    from tradepipe.config import Config, StrategyConfig

T = TypeVar("T")


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"ok": False, "code": "http-error", "message": raw.decode()[:500]}
    except TimeoutError as e:
        # Connected, request sent, no answer: it may have been journaled. Never fall back to
        # sending it again on our own, and say how to find out.
        where = urllib.parse.urlsplit(url).netloc
        raise TradepipeError(
            f"{where} took the request but did not answer within 10 s: it may have been"
            " accepted; check `tradepipe signals` before sending it again"
        ) from e
    except (urllib.error.URLError, ConnectionError) as e:
        # The path is left out: a webhook path carries the strategy's secret token.
        where = urllib.parse.urlsplit(url).netloc
        reason = getattr(e, "reason", e)
        raise DaemonUnavailable(f"no daemon answered at {where}: {reason}") from e


def _daemon(config: Config) -> dict[str, Any] | None:
    """The running daemon's address and API token, if one owns this journal."""
    journal_path = Path(config.journal.path)
    # The lock, not the pid in the file, says whether the daemon lives: a pid is reused after
    # a kill -9, a lock dies with its process.
    if not daemon_holds_lock(journal_path):
        return None
    return read_daemon_info(journal_path)


def deliver_signal(
    config: Config, strategy: str, body: bytes, *, wait: bool, timeout: float
) -> tuple[int, dict[str, Any], dict[str, Any] | None]:
    """Post the body to the strategy's webhook; with `wait`, also return the processed signal."""
    token = config.strategies[strategy].token
    headers = _signature_headers(config.strategies[strategy], body)
    daemon = _daemon(config)
    base = daemon["url"] if daemon else local_url((config.server.host, config.server.port))
    try:
        status, answer = _post(f"{base}/webhook/{token}", body, headers)
    except DaemonUnavailable:
        if daemon is not None:
            raise
        # The journal lock makes this safe: it fails if a daemon we cannot reach owns the journal.
        status, answer = asyncio.run(_run_standalone(config, token, body, headers))
    detail = None
    if wait and answer.get("signal_id") is not None:
        detail = wait_for_signal(config, int(answer["signal_id"]), timeout)
    return status, answer, detail


def wait_for_signal(config: Config, signal_id: int, timeout: float) -> dict[str, Any]:
    from tradepipe.journal.views import signal_detail

    journal = Journal.open(Path(config.journal.path), create=False)
    try:
        deadline = time.monotonic() + timeout
        while True:
            row = journal.signal(signal_id)
            assert row is not None
            if row["status"] in FINISHED_SIGNAL or time.monotonic() > deadline:
                detail = signal_detail(journal, signal_id)  # built once, at the end
                assert detail is not None
                return detail
            time.sleep(0.05)
    finally:
        journal.close()


def _signature_headers(strategy: StrategyConfig, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers when the strategy wants signed requests."""
    if not strategy.webhook_key:
        return {}
    from tradepipe.core.auth import sign

    message_id = f"msg_{secrets.token_hex(12)}"
    stamp = int(time.time())
    signature = sign(strategy.webhook_key, message_id, stamp, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": f"v1,{signature}",
    }


@contextlib.asynccontextmanager
async def standalone_engine(config: Config) -> AsyncIterator[Engine]:
    """No daemon: hold the journal's lock and run the engine here, as the daemon would (it
    resumes interrupted work at start and finishes what was started before it stops)."""
    journal_path = Path(config.journal.path)
    with journal_lock(journal_path):
        journal = Journal.open(journal_path)
        brokers = make_brokers(config, journal, utc_now)
        # Scheduled work (SPEC §13) is journaled here and carried out by the next `serve`.
        engine = Engine(config, journal, brokers, utc_now, run_schedules=False)
        try:
            await engine.start()
            yield engine
            await engine.drain()
        finally:
            await engine.stop()
            journal.close()


async def _run_standalone(
    config: Config, token: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """The very same server code, in-process on a loopback port, for one request."""
    import aiohttp
    from aiohttp import web

    from tradepipe.daemon.webhook import make_app

    async with standalone_engine(config) as engine:
        app = make_app(config, engine.journal, engine, utc_now)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            async with aiohttp.ClientSession() as session:
                url = f"http://{host}:{port}/webhook/{token}"
                async with session.post(url, data=body, headers=headers) as response:
                    return response.status, await response.json(content_type=None)
        finally:
            await runner.cleanup()


def act(config: Config, verb: Callable[[OperatorApi], Coroutine[Any, Any, T]]) -> T:
    """One acting command, `verb(operator)`: through the running daemon when there is one, else
    on our own under the journal lock, by the very same Operator the daemon runs."""
    daemon = _daemon(config)
    if daemon is not None:
        return asyncio.run(verb(DaemonClient(daemon)))
    return asyncio.run(_act_standalone(config, verb))


async def _act_standalone(
    config: Config, verb: Callable[[OperatorApi], Coroutine[Any, Any, T]]
) -> T:
    async with standalone_engine(config) as engine:
        return await verb(Operator(config, engine))


class StandaloneStates:
    """With no daemon, halt and resume work on the journal's states alone, under the journal
    lock: no broker is connected (a halt must work while a broker is unreachable), and the
    next `tradepipe serve` reads them back at start."""

    def __init__(self, config: Config, journal: Journal) -> None:
        from tradepipe.engine.notifier import outbox
        from tradepipe.engine.trading_states import TradingStates

        self.config = config
        self.states = TradingStates(journal, utc_now)
        # Told at the daemon's next start: its sender sends what the outbox holds.
        self.states.notify = outbox(journal, lambda: config, utc_now)

    async def halt(self, scope: Scope, state: TradingState, reason: str) -> dict[str, Any]:
        return halting.halt(self.config, self.states, scope, state, reason)

    async def resume(self, scope: Scope) -> dict[str, Any]:
        return halting.resume(self.config, self.states, scope)


def act_on_states(
    config: Config, verb: Callable[[StandaloneStates | DaemonClient], Coroutine[Any, Any, T]]
) -> T:
    """`tradepipe halt` / `resume`: through the running daemon when there is one (its
    in-memory states must change with the journal's), else on the journal under its lock."""
    daemon = _daemon(config)
    if daemon is not None:
        return asyncio.run(verb(DaemonClient(daemon)))
    journal_path = Path(config.journal.path)
    with journal_lock(journal_path):
        journal = Journal.open(journal_path)
        try:  # without group commit every write is on disk when it returns
            return asyncio.run(verb(StandaloneStates(config, journal)))
        finally:
            journal.close()


class DaemonClient:
    """The Operator's verbs through the running daemon's local API (daemon/local_api.py): the
    same signatures, the same answers."""

    def __init__(self, daemon: dict[str, Any]) -> None:
        self.daemon = daemon

    async def review(self, delivery_id: int, approve: bool) -> dict[str, Any]:
        return self._call("/api/review", {"delivery_id": delivery_id, "approve": approve})

    async def flatten(self, account: str | None, ticker: str | None) -> dict[str, Any]:
        return self._call("/api/flatten", {"account": account, "ticker": ticker})

    async def replay(self, signal_id: int, execute: bool) -> dict[str, Any]:
        return self._call("/api/replay", {"signal_id": signal_id, "execute": execute})

    async def paper_quote(self, account: str, ticker: str, price: Decimal) -> dict[str, Any]:
        payload = {"account": account, "ticker": ticker, "price": str(price)}
        return self._call("/api/paper/quote", payload)

    async def paper_chain(self, account: str, underlying: str, text: str) -> dict[str, Any]:
        payload = {"account": account, "underlying": underlying, "text": text}
        return self._call("/api/paper/chain", payload)

    async def status(self) -> dict[str, Any]:
        return self._call("/api/status", {})

    async def halt(self, scope: Scope, state: TradingState, reason: str) -> dict[str, Any]:
        payload = {"scope": str(scope.kind), "name": scope.name, "state": str(state)}
        return self._call("/api/halt", {**payload, "reason": reason})

    async def resume(self, scope: Scope) -> dict[str, Any]:
        return self._call("/api/resume", {"scope": str(scope.kind), "name": scope.name})

    async def notify_test(self) -> dict[str, Any]:
        return self._call("/api/notify/test", {})

    async def risk(self) -> dict[str, Any]:
        return self._call("/api/risk", {})

    def _call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        status, answer = _post(
            f"{self.daemon['url']}{path}",
            json.dumps(payload).encode(),
            {
                "Authorization": f"Bearer {self.daemon['token']}",
                "Content-Type": "application/json",
            },
        )
        if status != 200:
            raise TradepipeError(answer.get("message", f"daemon answered {status}"))
        answer.pop("ok", None)  # the same answer as a standalone run
        return answer


def status(config: Config) -> dict[str, Any]:
    """The daemon's live report when one runs, else what the journal alone can say."""
    from tradepipe.journal.views import status_view

    daemon = _daemon(config)
    live = asyncio.run(DaemonClient(daemon).status()) if daemon is not None else None
    journal = Journal.open(Path(config.journal.path), create=False)
    try:
        return status_view(config, journal, daemon, live, now=utc_now())
    finally:
        journal.close()


def notify_test(config: Config) -> dict[str, Any]:
    """`tradepipe notify test`: through the daemon when one runs (its config, its sender), else
    straight from here; no engine is started for it (nothing else needs the brokers)."""
    from dataclasses import asdict

    from tradepipe.engine.notifier import test_targets

    daemon = _daemon(config)
    if daemon is not None:
        return {"through": "daemon", **asyncio.run(DaemonClient(daemon).notify_test())}
    results = asyncio.run(test_targets(config))
    return {"through": "direct", "targets": [asdict(r) for r in results]}


def risk(config: Config) -> dict[str, Any]:
    """`tradepipe risk`: the daemon's figures when one runs, else the same report from the
    journal alone (the counts seeded as a start would seed them; nothing is written)."""
    daemon = _daemon(config)
    if daemon is not None:
        return {**asyncio.run(DaemonClient(daemon).risk()), "daemon": True}
    from tradepipe.engine.current import Current
    from tradepipe.engine.risk import RiskLimits
    from tradepipe.engine.risk_report import in_force, risk_report
    from tradepipe.engine.trading_states import TradingStates

    journal = Journal.open(Path(config.journal.path), create=False)
    try:
        states = TradingStates(journal, utc_now)
        limits = RiskLimits(journal, Current(config, {}), utc_now, states)
        limits.seed(trip=False)
        rows = in_force(states.rows.values(), utc_now())
        return {**risk_report(limits, rows), "daemon": False}
    finally:
        journal.close()
