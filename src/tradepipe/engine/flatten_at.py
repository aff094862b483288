"""flatten_at (SPEC §13): each subscription's positions closed at a time of day, in its own
zone. Each firing is a `schedules` row, journaled once (unique per subscription and time): a
firing is done with what it did, or missed — more than 60 s late because tradepipe was down,
or refused by the broker — and never run late or twice. The next one is armed after each; a
reload that changes or removes the setting cancels the pending one (engine/scheduler.py runs
them)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradepipe.core.schedules import (
    ScheduleKind,
    ScheduleStatus,
    late_by,
    missed_reason,
    next_firing,
)
from tradepipe.engine.commands import Commands
from tradepipe.engine.current import Current
from tradepipe.errors import BrokerError
from tradepipe.journal import Journal

if TYPE_CHECKING:
    from tradepipe.config.settings import FlattenAt
    from tradepipe.engine.scheduler import Scheduler

log = logging.getLogger(__name__)

# Firings of one flatten_at journaled as missed after a long stop, at most (a week of them).
MAX_MISSED_FIRINGS = 7


class FlattenTimes:
    def __init__(
        self,
        scheduler: Scheduler,
        journal: Journal,
        current: Current,
        clock: Callable[[], datetime],
        *,
        commands: Commands,
    ) -> None:
        self.scheduler = scheduler
        self.journal = journal
        self.current = current
        self.clock = clock
        self.commands = commands

    def plan(self) -> None:
        """Arm each subscription's next flatten_at firing (at start, and after a reload: a
        pending firing whose flatten_at changed or went away is canceled)."""
        if not self.scheduler.started:
            return  # start() reads what is journaled first, then plans
        wanted = self.current.config.flatten_times()
        now = self.clock()
        for row in self.scheduler.pending():
            if row["kind"] != ScheduleKind.FLATTEN_AT or self.scheduler.running(row["id"]):
                continue
            spec = wanted.get(row["subscription"])
            if spec is None or _spec(spec, self._account(row["subscription"])) != row["detail"]:
                why = "flatten_at changed by a reload" if spec else "flatten_at is no longer set"
                self.scheduler.finish(row, ScheduleStatus.CANCELED, why)
        armed = {
            r["subscription"]
            for r in self.scheduler.pending()
            if r["kind"] == ScheduleKind.FLATTEN_AT
        }
        for name, spec in wanted.items():
            if name not in armed:
                self._plan_flatten(name, spec, after=now)

    def _account(self, subscription: str) -> str | None:
        sub = self.current.config.subscriptions.get(subscription)
        return sub.account if sub is not None else None

    def _plan_flatten(self, name: str, spec: FlattenAt, *, after: datetime) -> None:
        """Journal the subscription's next firing after `after` and arm it; firings already
        more than GRACE past (tradepipe was stopped through them) are journaled as missed."""
        account = self._account(name)
        detail = _spec(spec, account)
        now = self.clock()
        firing = next_firing(after, spec.minutes, spec.weekdays, spec.tz)
        skipped = 0
        while (late := late_by(firing, now)) is not None:
            if skipped < MAX_MISSED_FIRINGS:
                why = f"{missed_reason(late)} while tradepipe was not running: not run late"
                self.journal.add_schedule(
                    kind=ScheduleKind.FLATTEN_AT,
                    subscription=name,
                    account=account,
                    detail=detail,
                    due_at=firing,
                    at=now,
                    status=ScheduleStatus.MISSED,
                    reason=why,
                )
                log.warning("flatten_at of %s at %s: %s", name, firing.isoformat(), why)
            skipped += 1
            firing = next_firing(firing, spec.minutes, spec.weekdays, spec.tz)
        row, _ = self.journal.add_schedule(
            kind=ScheduleKind.FLATTEN_AT,
            subscription=name,
            account=account,
            detail=detail,
            due_at=firing,
            at=now,
        )
        self.scheduler.arm(row)

    async def run(self, row: dict[str, Any]) -> None:
        name = row["subscription"]
        due = datetime.fromisoformat(row["due_at"])
        late = late_by(due, self.clock())
        if late is not None:
            why = f"{missed_reason(late)}: not run late"
            self.scheduler.finish(row, ScheduleStatus.MISSED, why)
        else:
            account = row["account"]
            try:
                results = await self.commands.flatten_subscription(
                    name, account, f"flatten_at {due.isoformat()}"
                )
            except BrokerError as e:
                # Not tried again: a close whose fate the broker left unknown must not be sent
                # a second time. Said out loud; the operator's flatten is one command away.
                why = f"failed at the broker: {e}; not retried, check account {account}"
                self.scheduler.finish(row, ScheduleStatus.MISSED, why)
            else:
                self.scheduler.finish(row, ScheduleStatus.DONE, _flattened(account, results))
        spec = self.current.config.flatten_times().get(name)
        if spec is not None and _spec(spec, self._account(name)) == row["detail"]:
            self._plan_flatten(name, spec, after=due)
        else:  # a reload changed it while this ran: armed anew from the config
            self.plan()


def _spec(spec: FlattenAt, account: str | None) -> str:
    """The flatten_at a firing was armed for (a reload that changes it cancels the firing)."""
    return json.dumps(
        {"time": spec.time, "days": spec.days, "tz": spec.tz, "account": account},
        sort_keys=True,
    )


def _flattened(account: str, results: list[dict[str, Any]]) -> str:
    """What a flatten_at did, in one line."""
    if not results:
        return f"nothing held on {account}: nothing sent"
    parts = []
    for result in results:
        closed = result.get("closed")
        did = []
        if closed:
            did.append(f"{closed['side']} {closed['quantity']} ({closed['status']})")
        if result.get("canceled"):
            did.append(f"{len(result['canceled'])} order(s) canceled")
        if result.get("left_working"):
            did.append(f"{len(result['left_working'])} left working")
        parts.append(f"{result['ticker']}: {', '.join(did) or 'nothing to do'}")
    return f"flattened {account}: " + "; ".join(parts)
