"""Trips (SPEC §13): a reached risk limit sets a trading state through `TradingStates.trip`,
which journals it with the figures that reached it and tells it (SPEC §14 kind `risk`) in the same
transaction; each one is logged here. An account trips per its `on_trip`: `reduce_only`,
or `flatten` (halted at once, then everything on the account canceled and closed by the
operator's flatten path). A daily-loss trip ends at the next day's start; the others only with
`tradepipe resume`. A subscription whose losses in a row reach `max_consecutive_losses` without
a `loss_cooldown` is reduce-only until resumed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradepipe.core.limits import AccountFigures, SubscriptionLimits, Trip, trips
from tradepipe.core.trading_states import Scope, ScopeState, TradingState, next_day_start
from tradepipe.engine.trading_states import TradingStates
from tradepipe.journal.trading_states import StateRow

if TYPE_CHECKING:
    from tradepipe.config.accounts import RiskConfig

log = logging.getLogger(__name__)

CONSECUTIVE_LOSSES = "max_consecutive_losses"


class Trips:
    def __init__(
        self,
        states: TradingStates,
        clock: Callable[[], datetime],
        flatten: Callable[[str, str], Awaitable[Any]] | None = None,
    ) -> None:
        self.states = states
        self.clock = clock
        self.flatten = flatten  # on_trip = "flatten": close everything on the account
        self.tasks: set[asyncio.Task[Any]] = set()

    def account(
        self,
        account: str,
        risk: RiskConfig,
        figures: AccountFigures | None,
        orders_last_minute: int,
    ) -> list[StateRow]:
        """Trip the account on each limit `figures` reach (None: its equity is not known yet,
        so only the order rate can trip it); the rows that changed what is in force."""
        limits = risk.limits()
        if figures is None:
            limits = replace(limits, max_daily_loss=None, max_drawdown=None)
            zero = Decimal(0)
            figures = AccountFigures(zero, zero, zero, orders_last_minute=orders_last_minute)
        now = self.clock()
        scope = Scope.account(account)
        state = TradingState.HALTED if risk.on_trip == "flatten" else TradingState.REDUCE_ONLY
        changed = []
        for trip in trips(figures, limits):
            until = None
            if trip.ends_at_day_start:
                until = next_day_start(now, risk.day_starts_at, risk.timezone)
            in_force = self.states.rows.get(scope)
            if (
                in_force is not None
                and in_force.limit == trip.limit
                and in_force.state.state is state
                and in_force.state.until_at == until
            ):
                continue  # tripped already: one journal row and one notice per trip
            row = self.states.trip(
                ScopeState(scope, state, trip.reason, until), limit=trip.limit, figures=trip.figures
            )
            if row is None:  # what is in force is as strict already
                continue
            changed.append(row)
            self.tripped(account, trip, row)
            if state is TradingState.HALTED and self.flatten is not None:
                self._spawn(self.flatten(account, f"{trip.limit} trip"))
        return changed

    def losses(self, subscription: str, in_a_row: int, limits: SubscriptionLimits) -> bool:
        """Losses in a row at the limit without a cooldown: the subscription is reduce-only
        until `tradepipe resume --subscription` (with a cooldown, the check denies entries
        until it ends). True when the subscription is blocked so."""
        most = limits.max_consecutive_losses
        if most is None or limits.loss_cooldown is not None or in_a_row < most:
            return False
        scope = Scope.subscription(subscription)
        in_force = self.states.rows.get(scope)
        if in_force is not None and in_force.limit == CONSECUTIVE_LOSSES:
            return True
        reason = (
            f"max_consecutive_losses {most}: {in_a_row} losses in a row"
            " (entries resume with `tradepipe resume`)"
        )
        figures = {"limit": Decimal(most), "consecutive_losses": Decimal(in_a_row)}
        row = self.states.trip(
            ScopeState(scope, TradingState.REDUCE_ONLY, reason),
            limit=CONSECUTIVE_LOSSES,
            figures=figures,
        )
        if row is not None:
            self.tripped(subscription, Trip(CONSECUTIVE_LOSSES, reason, figures), row)
        return True

    def tripped(self, name: str, trip: Trip, row: StateRow) -> None:
        """A trip changed what is in force (journaled with its figures, and told, by
        TradingStates.trip)."""
        log.error("risk limit %s reached on %s: %s", trip.limit, name, trip.reason)

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:  # logged, never lost: the account stays halted either way
                log.exception("flatten after a trip")

        task = asyncio.get_running_loop().create_task(run(), name="flatten on trip")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def settle(self) -> None:
        """Wait for the flattens that trips started (tests; the engine's stop)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
