"""The trading states in force (SPEC §13), kept in memory and journaled on every change: the
delivery path asks `effective` without reading SQLite, and a restart reads them back.

A trip (`trip`) never loosens what is in force (`core.trading_states.kept_state`); an operator's
`halt` sets exactly what was asked and `resume` ends a scope's state. A state whose `until_at`
came (a daily-loss trip at the next day's start) is over: `effective` ignores it at once and
`expire` journals its end.

Every change is told (SPEC §14 kind `risk`: a trip, a halt, a resume, a trip's end) through
`notify`, in the transaction that journals it: the notice and its cause land together or not at
all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

from tradepipe.core.notify import Notify, NotifyKind, no_notify
from tradepipe.core.trading_states import (
    EffectiveState,
    Scope,
    ScopeKind,
    ScopeState,
    TradingState,
    effective_state,
    kept_state,
)
from tradepipe.journal import Journal
from tradepipe.journal.trading_states import OPERATOR, TRIP, StateRow

log = logging.getLogger(__name__)


class TradingStates:
    def __init__(self, journal: Journal, clock: Callable[[], datetime]) -> None:
        self.journal = journal
        self.clock = clock
        self.rows: dict[Scope, StateRow] = {r.state.scope: r for r in journal.trading_states()}
        # The outbox (SPEC §14): the engine sets its notifier's; a CLI run without the daemon
        # sets one that writes the rows for the daemon's sender to send at its next start.
        self.notify: Notify = no_notify

    def effective(self, account: str, strategy: str | None, subscription: str) -> EffectiveState:
        """The strictest state covering an order of this subscription, now."""
        if not self.rows:
            return EffectiveState(TradingState.ACTIVE)
        states = (r.state for r in self.rows.values())
        return effective_state(states, account, strategy, subscription, self.clock())

    def halt(self, scope: Scope, state: TradingState, reason: str) -> StateRow:
        """An operator's `tradepipe halt` (`state` halted or reduce_only): set as asked."""
        with self.journal.transaction():
            row = self.journal.set_trading_state(
                ScopeState(scope, state, reason), source=OPERATOR, at=self.clock()
            )
            self.notify(NotifyKind.RISK, str(scope), f"{scope} is {state}: {reason}")
        self.rows[scope] = row
        log.warning("%s is %s (%s)", scope, state, reason)
        return row

    def resume(self, scope: Scope, reason: str = "tradepipe resume") -> bool:
        """The scope goes back to active; False when it was active already."""
        with self.journal.transaction():
            ended = self.journal.end_trading_state(
                scope, source=OPERATOR, at=self.clock(), reason=reason
            )
            if ended:
                self.notify(NotifyKind.RISK, str(scope), f"{scope} is active again: {reason}")
        # Only once journaled: a resume that failed leaves the state in force, here as there.
        self.rows.pop(scope, None)
        if ended:
            log.warning("%s resumed: %s", scope, reason)
        return ended

    def trip(
        self,
        state: ScopeState,
        *,
        limit: str,
        figures: Mapping[str, Decimal],
    ) -> StateRow | None:
        """A limit reached: `state` is journaled with the figures unless what is in force is
        as strict already; the row now in force, or None when nothing changed."""
        now = self.clock()
        existing = self.rows.get(state.scope)
        kept = kept_state(existing.state if existing else None, state, now)
        if existing is not None and kept is existing.state:
            return None
        with self.journal.transaction():
            row = self.journal.set_trading_state(
                kept, source=TRIP, at=now, limit=limit, figures=figures
            )
            self.notify(
                NotifyKind.RISK, str(state.scope), f"{state.scope} is {kept.state}: {kept.reason}"
            )
        self.rows[state.scope] = row
        log.error("%s is %s: %s", state.scope, kept.state, kept.reason)
        return row

    def expire(self) -> list[Scope]:
        """Journal the end of each state whose time came; the scopes that went back to active."""
        now = self.clock()
        ended = [
            scope
            for scope, row in self.rows.items()
            if row.state.until_at is not None and now >= row.state.until_at
        ]
        for scope in ended:
            row = self.rows.pop(scope)
            reason = f"{row.limit or 'the trip'} ended at the day's start"
            with self.journal.transaction():
                self.journal.end_trading_state(scope, source=TRIP, at=now, reason=reason)
                self.notify(NotifyKind.RISK, str(scope), f"{scope} is active again: {reason}")
        return ended

    def in_force(self) -> list[StateRow]:
        """The states in force now, broadest scope first; journals nothing (what /healthz and
        `tradepipe status` read: a state whose time came is left out, `expire` ends it)."""
        now = self.clock()
        order = list(ScopeKind)
        return sorted(
            (r for r in self.rows.values() if r.state.until_at is None or now < r.state.until_at),
            key=lambda r: (order.index(r.state.scope.kind), r.state.scope.name),
        )

    def listing(self) -> list[StateRow]:
        """The states in force now, broadest scope first."""
        self.expire()
        order = list(ScopeKind)
        return sorted(
            self.rows.values(),
            key=lambda r: (order.index(r.state.scope.kind), r.state.scope.name),
        )
