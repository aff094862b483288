"""Telling the trader (SPEC §14): notifications written to the journal's outbox in the
transaction of their cause (`notify`), and sent after, off the signal path, through Apprise.

The sender is one task. Each round it reads the pending rows, waits until they are on disk (a
notification never tells of a cause a crash could still undo), merges a burst of one kind per
target into one message (the first of a kind goes at once, the rest of that minute together),
and hands the sends to its own threads: Apprise's calls block, and a target that takes the
connection and never answers must hold up neither the event loop nor the loop's default
executor (aiohttp resolves names there). A failed send is tried again after 10 s, doubling to
30 min, for 24 h after its cause, then given up: journaled, audited and logged.

At least once: a row is marked sent after its send, so a crash in between sends it again at
the next start; in the normal path each row is sent once.

The silence alarm (a strategy with `silence_alert`) is kept here too: `heard` re-arms it for
every journaled request, from memory (no SQL on the webhook's path); the daily summary is
engine/daily.py's, written from this task's rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tradepipe.config.notify import NotifyTarget, apprise_service, masked_url
from tradepipe.core.notify import (
    Message,
    Note,
    Notify,
    NotifyKind,
    hold_until,
    merge,
    next_attempt,
    silence_due,
)
from tradepipe.engine.current import Current
from tradepipe.engine.daily import DailySummary
from tradepipe.engine.drill import pause_point
from tradepipe.journal import Journal

if TYPE_CHECKING:
    from tradepipe.config import Config

log = logging.getLogger(__name__)

IDLE = 60.0  # seconds a round sleeps when nothing is due (a new row wakes it at once)
_APPRISE_TYPES = {
    NotifyKind.FAILURE: "failure",
    NotifyKind.RISK: "warning",
    NotifyKind.BROKER: "warning",
    NotifyKind.SILENCE: "warning",
    NotifyKind.FILL: "success",
}


@dataclass(frozen=True, slots=True)
class TestResult:
    target: str  # the target's label: never its URL
    ok: bool
    error: str | None = None


def label(index: int, target: NotifyTarget) -> str:
    return f"notify[{index}] {masked_url(target.url)}"


def send_now(target: NotifyTarget, message: Message, kind: NotifyKind) -> str | None:
    """Send one message to one target (blocking: run it in a thread). Answers None when it was
    sent, else why not, in Apprise's words without the target's secrets."""
    import apprise

    # Apprise's INFO and DEBUG lines may name what a URL holds; its warnings are captured.
    logging.getLogger("apprise").setLevel(logging.WARNING)
    service = apprise_service(target.url)
    if service is None:
        return "Apprise cannot use this URL"
    notify_type = apprise.NotifyType(_APPRISE_TYPES.get(kind, "info"))
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        captured_error: str | None = None
        try:
            ok = service.notify(body=message.body, title=message.title, notify_type=notify_type)
        except Exception as e:  # a plugin's bug must not end the sender
            ok, captured_error = False, f"{type(e).__name__}: {e}"
        said = captured.getvalue().strip().replace("\n", "; ")
    if ok:
        return None
    return _without_secret(captured_error or said or "Apprise reported a failure", target.url)


def _without_secret(text: str, url: str) -> str:
    """Apprise's own words rarely quote the URL; when they do, the URL goes."""
    text = text.replace(url, "<url>")
    rest = url.split("://", 1)[-1]
    return text.replace(rest, "<url>") if len(rest) >= 8 else text


def outbox(journal: Journal, config: Callable[[], Config], clock: Callable[[], datetime]) -> Notify:
    """The outbox's writer: a notification journaled for every target of the config of now
    that takes its kind (nothing written when none does), inside the caller's transaction. A
    CLI run without the daemon uses it alone: the daemon's sender sends the rows at its start."""

    def notify(kind: NotifyKind, subject: str, text: str) -> int:
        targets = [t.key for t in config().notify if kind in t.kinds]
        return journal.add_notifications(targets, kind, subject, text, clock())

    return notify


class Notifier:
    """The outbox's writer (`notify`, any component, inside its cause's transaction), its
    sender (`run`, a task) and the silence alarm."""

    def __init__(self, journal: Journal, current: Current, clock: Callable[[], datetime]) -> None:
        self.journal = journal
        self.current = current
        self.clock = clock
        self._wake = asyncio.Event()
        # (target, kind) → when a message of that kind last reached that target
        self._last_sent: dict[tuple[str, NotifyKind], datetime] = {}
        # strategy → when a request for it was last journaled; strategies alerted since
        self._heard: dict[str, datetime] = {}
        self._alerted: set[str] = set()
        self.daily = DailySummary(journal, current, clock, self.notify)
        self._pool: ThreadPoolExecutor | None = None
        self._write = outbox(journal, lambda: current.config, clock)
        self.sent = 0  # messages sent by this process (the metrics read it)
        self.failed = 0

    # -- the writer ----------------------------------------------------------------------------

    def notify(self, kind: NotifyKind, subject: str, text: str) -> int:
        """Journal a notification for every target that takes `kind`; call it inside the
        transaction of its cause (it joins it). Nothing is written when no target takes the
        kind. Answers how many rows were written; the sender is woken."""
        written = self._write(kind, subject, text)
        if written:
            self._wake.set()
        return written

    # -- the silence alarm ---------------------------------------------------------------------

    def heard(self, strategy: str, at: datetime) -> None:
        """A request for `strategy` was journaled: the silence alarm starts again."""
        self._heard[strategy] = at
        if strategy in self._alerted:  # re-armed: the sender has no deadline for it yet
            self._alerted.discard(strategy)
            self._wake.set()

    def load_silence(self) -> None:
        """At start: the alarms as the journal left them (last request, last alert)."""
        now = self.clock()
        for name, strategy in self.current.config.strategies.items():
            if strategy.silence_alert is None:
                continue
            signal_at, alert_at = self.journal.last_heard(name)
            self._heard[name] = signal_at or now
            if alert_at is not None and (signal_at is None or alert_at >= signal_at):
                self._alerted.add(name)

    def _check_silence(self, now: datetime) -> datetime | None:
        """Alert the strategies silent for their `silence_alert`; answers when the next may be."""
        soonest: datetime | None = None
        for name, strategy in self.current.config.strategies.items():
            if strategy.silence_alert is None:
                continue
            after = timedelta(seconds=float(strategy.silence_alert))
            heard_at = self._heard.setdefault(name, now)  # a strategy a reload added
            if silence_due(heard_at, name in self._alerted, after, now):
                self._alerted.add(name)
                silent = _duration(now - heard_at)
                text = (
                    f'strategy "{name}" received no signal for {silent} (silence_alert ='
                    f" {strategy.silence_alert} s); check the TradingView alert"
                )
                self.notify(NotifyKind.SILENCE, f"strategy {name}", text)
            elif name not in self._alerted:
                due = heard_at + after
                soonest = due if soonest is None else min(soonest, due)
        return soonest

    # -- the sender ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Send what the outbox holds, round after round, until cancelled."""
        self.load_silence()
        self.daily.load()
        try:
            while True:
                self._wake.clear()
                try:
                    wait = await self.send_due()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the journal failing stops the daemon; anything else: next
                    log.exception("notifications: a round failed; trying again in 5 s")
                    wait = 5.0
                if not self._wake.is_set():
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the
                    # cancellation that stops the engine, and this loop would never end.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(wait, 0.05)):
                            await self._wake.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)

    async def send_due(self) -> float:
        """One round: the silence alarms, then every due burst sent. Answers the seconds until
        something may be due next (a new row wakes `run` sooner)."""
        now = self.clock()
        wake_at = now + timedelta(seconds=IDLE)
        silence = self._check_silence(now)
        if silence is not None:
            wake_at = min(wake_at, silence)
        daily = await self.daily.check(now)  # its reports are built off the loop
        if daily is not None:
            wake_at = min(wake_at, daily)
            now = self.clock()  # a build takes seconds on a big journal
        targets = {t.key: (i, t) for i, t in enumerate(self.current.config.notify)}
        bursts: dict[tuple[str, NotifyKind], list[tuple[Note, int]]] = {}
        for key, note, next_at, attempts in self.journal.pending_notifications():
            if next_at > now:
                wake_at = min(wake_at, next_at)
                continue
            bursts.setdefault((key, note.kind), []).append((note, attempts))
        sends: list[tuple[str, NotifyKind, int, NotifyTarget, list[tuple[Note, int]]]] = []
        for (key, kind), burst in bursts.items():
            if key not in targets:
                why = "its [[notify]] target is no longer in the config"
                self.journal.give_up_notifications([n.id for n, _ in burst], why, now)
                log.warning("notifications %s given up: %s", [n.id for n, _ in burst], why)
                continue
            hold = hold_until(self._last_sent.get((key, kind)), now)
            if hold is not None:
                wake_at = min(wake_at, hold)
                continue
            index, target = targets[key]
            sends.append((key, kind, index, target, burst))
        if sends:
            # Nothing is told before its cause is on disk.
            await self.journal.durable()
            await pause_point("notify")
            results = await asyncio.gather(
                *(
                    self._send(target, merge(kind, [n for n, _ in burst]), kind)
                    for _, kind, _, target, burst in sends
                )
            )
            now = self.clock()
            for (key, kind, index, target, burst), error in zip(sends, results, strict=True):
                retry_at = self._settle(key, kind, label(index, target), burst, error, now)
                if retry_at is not None:
                    wake_at = min(wake_at, retry_at)
        return max((wake_at - self.clock()).total_seconds(), 0.0)

    def _settle(
        self,
        key: str,
        kind: NotifyKind,
        name: str,
        burst: list[tuple[Note, int]],
        error: str | None,
        now: datetime,
    ) -> datetime | None:
        """Journal a send's outcome; answers when the burst's rows are tried again, if ever."""
        if error is None:
            self.sent += 1
            self._last_sent[(key, kind)] = now
            self.journal.mark_notifications_sent([n.id for n, _ in burst], now)
            log.info("notification %s sent to %s", ", ".join(str(n.id) for n, _ in burst), name)
            return None
        self.failed += 1
        log.warning("notification to %s failed: %s", name, error)
        retry: dict[datetime, list[int]] = {}
        lost: list[int] = []
        for note, attempts in burst:
            due = next_attempt(note.created_at, attempts + 1, now)
            if due is None:
                lost.append(note.id)
            else:
                retry.setdefault(due, []).append(note.id)
        for due, ids in retry.items():
            self.journal.retry_notifications(ids, error, due)
        if lost:
            why = f"not sent within 24 h: {error}"
            self.journal.give_up_notifications(lost, why, now)
            log.error("notifications %s to %s given up: %s", lost, name, why)
        return min(retry, default=None)

    async def _send(self, target: NotifyTarget, message: Message, kind: NotifyKind) -> str | None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="notify")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, send_now, target, message, kind)
        except Exception as e:
            return f"{type(e).__name__}: {e}"

    # -- `tradepipe notify test` ---------------------------------------------------------------

    async def test(self, config: Config | None = None) -> list[TestResult]:
        """Send a test message to every target now, from the daemon's sender threads."""
        return await test_targets(config or self.current.config, self._send)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


async def test_targets(
    config: Config,
    send: Callable[[NotifyTarget, Message, NotifyKind], Awaitable[str | None]] | None = None,
) -> list[TestResult]:
    """Send a test message to every target now (not through the outbox: the answer is the
    result); each target's outcome, with the reason it failed."""
    if send is None:

        async def send(target: NotifyTarget, message: Message, kind: NotifyKind) -> str | None:
            return await asyncio.to_thread(send_now, target, message, kind)

    message = Message(
        "tradepipe: test",
        "A test message from tradepipe (`tradepipe notify test`): this target works.",
        (),
    )
    results = await asyncio.gather(
        *(send(target, message, NotifyKind.TEST) for target in config.notify)
    )
    return [
        TestResult(label(i, target), error is None, error)
        for i, (target, error) in enumerate(zip(config.notify, results, strict=True))
    ]


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"
