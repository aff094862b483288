"""The running process: wires config, journal, brokers, engine and server, and owns the journal.

One daemon per journal: it holds an exclusive lock on `<journal>.lock` and publishes its local
API address and token in `<journal>.daemon.json` (mode 0600), which the CLI's acting commands
read to go through the daemon rather than around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tradepipe.brokers import make_broker
from tradepipe.brokers.base import Broker
from tradepipe.daemon.listener import BoundedRunner
from tradepipe.daemon.listener import site as listening_site
from tradepipe.daemon.reloading import Reloader
from tradepipe.daemon.webhook import WEBHOOK, make_app
from tradepipe.engine import Engine
from tradepipe.engine.operator import Operator
from tradepipe.errors import TradepipeError
from tradepipe.journal import Journal

if TYPE_CHECKING:
    from tradepipe.config import Config

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


Actions = Operator  # its name before engine/operator.py; tests still import it from here


def make_brokers(
    config: Config, journal: Journal, clock: Callable[[], datetime]
) -> dict[str, Broker]:
    return {
        name: make_broker(name, account, journal, clock)
        for name, account in config.accounts.items()
    }


@dataclass
class DaemonFiles:
    lock: Path
    info: Path

    @classmethod
    def beside(cls, journal_path: Path) -> DaemonFiles:
        return cls(
            lock=journal_path.with_name(journal_path.name + ".lock"),
            info=journal_path.with_name(journal_path.name + ".daemon.json"),
        )


@contextlib.contextmanager
def journal_lock(journal_path: Path) -> Iterator[IO[str]]:
    """Hold the journal's exclusive lock, or fail at once naming who holds it."""
    files = DaemonFiles.beside(journal_path)
    files.lock.parent.mkdir(parents=True, exist_ok=True)
    handle = files.lock.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise TradepipeError(
            f"another tradepipe process is using the journal {journal_path}"
            f" (lock {files.lock}); stop it first"
        ) from None
    try:
        yield handle
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def read_daemon_info(journal_path: Path) -> dict[str, Any] | None:
    info = DaemonFiles.beside(journal_path).info
    try:
        return json.loads(info.read_text())
    except (OSError, ValueError):
        return None


def notify_systemd(message: str) -> None:
    """sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET, when systemd gave one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(message.encode(), address)


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings: half the `WatchdogSec=` systemd gave this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 1e6 / 2, 0.01)
    except ValueError:
        return None


async def _ping_watchdog(interval: float) -> None:
    # Pinged from the event loop itself: a loop blocked by a stuck call stops the pings, and
    # systemd restarts the daemon (Restart=on-failure); the next start settles its work.
    while True:
        notify_systemd("WATCHDOG=1")
        await asyncio.sleep(interval)


async def serve(
    config: Config,
    *,
    host: str | None = None,
    port: int | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT."""
    journal_path = Path(config.journal.path)
    with journal_lock(journal_path):
        journal = Journal.open(journal_path)
        # One fsync'd commit per turn of the loop for all writers; durable() before anything
        # leaves the process. A failed commit stops the daemon: systemd restarts it onto the
        # last committed state, which the next start settles.
        stop = asyncio.Event()
        journal.group_commits().on_failure(lambda error: stop.set())
        # Until the reload handler below is in place, a SIGHUP must not kill the start.
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGHUP, log.warning, "SIGHUP while starting: ignored; send it once ready"
        )
        clock = utc_now
        brokers = make_brokers(config, journal, clock)
        engine = Engine(config, journal, brokers, clock)
        api_token = secrets.token_urlsafe(24)
        operator = Operator(config, engine)
        app = make_app(config, journal, engine, clock, api_token=api_token, actions=operator)
        reloader = Reloader(
            config,
            journal=journal,
            engine=engine,
            webhook=app[WEBHOOK],
            actions=operator,
            clock=clock,
            notify=notify_systemd,
        )
        # Bounded (listener.py): read timeouts, keep-alive idle timeout, a connection cap.
        runner = BoundedRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        bind_host = host or config.server.host
        bind_port = port if port is not None else config.server.port
        site = listening_site(runner, bind_host, bind_port)
        # Recovery first (resumed signals keep their place ahead of new ones), then the port.
        await engine.start()
        try:
            await site.start()
        except OSError as e:
            # Stop what recovery started: it must not trade on without a daemon to report it.
            await engine.stop()
            await runner.cleanup()
            journal.close()
            raise TradepipeError(f"cannot listen on {bind_host}:{bind_port}: {e}") from e
        url = local_url(runner.addresses[0])
        files = DaemonFiles.beside(journal_path)
        _write_private(files.info, json.dumps({"url": url, "token": api_token, "pid": os.getpid()}))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        scheduler = _schedule_reconciliation(config, engine)
        reloader.scheduler = scheduler
        loop.add_signal_handler(signal.SIGHUP, reloader.request)  # `systemctl reload`
        notify_systemd("READY=1")
        interval = watchdog_interval()
        watchdog = asyncio.create_task(_ping_watchdog(interval)) if interval else None
        if on_ready:
            on_ready(url)
        try:
            await stop.wait()
        finally:
            notify_systemd("STOPPING=1")
            # Removing the handler would restore SIGHUP's default, which ends the process in the
            # middle of the drain: a `systemctl reload` while stopping is ignored instead.
            loop.add_signal_handler(
                signal.SIGHUP, lambda: log.warning("SIGHUP while stopping: ignored")
            )
            await reloader.close()
            if watchdog is not None:
                watchdog.cancel()
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            log.info("stopping: no new signals; finishing work in flight")
            await site.stop()
            # In-flight work gets a moment; whatever is left is settled at the next start.
            with contextlib.suppress(TimeoutError):
                grace = float(reloader.config.server.shutdown_grace)
                await asyncio.wait_for(engine.drain(), timeout=grace)
            await engine.stop()
            await runner.cleanup()
            files.info.unlink(missing_ok=True)
            group = journal.group
            journal.close()
        if group is not None and group.failure is not None:
            raise group.failure


def _schedule_reconciliation(config: Config, engine: Engine) -> Any:
    """Periodic work on apscheduler: brokers that failed are reconnected as their backoff runs
    out (1, 2, 4 … 60 s), and the journal is compared with every broker every
    `[reconciliation].interval` seconds (the first comparison ran at start). One run of each at
    a time; runs missed while the loop was busy collapse into one."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    # At INFO it logs every run of every job: two lines a second that bury ours.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = AsyncIOScheduler(timezone="UTC")
    every = {"max_instances": 1, "coalesce": True}
    scheduler.add_job(engine.reconnect_due, "interval", seconds=1, id="reconnect", **every)
    interval = float(config.reconciliation.interval)
    if interval > 0:
        scheduler.add_job(
            engine.reconcile_everything, "interval", seconds=interval, id="reconcile", **every
        )
    scheduler.start()
    return scheduler


def local_url(address: Any) -> str:
    """How a local client reaches a bound socket: wildcards become loopback, IPv6 is bracketed."""
    host, port = address[0], address[1]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def daemon_holds_lock(journal_path: Path) -> bool:
    """True if a process holds the journal's lock (a live daemon or a standalone command)."""
    lock = DaemonFiles.beside(journal_path).lock
    if not lock.exists():
        return False
    with lock.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
