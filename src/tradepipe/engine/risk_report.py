"""What `tradepipe risk` shows (SPEC §13): each scope's trading state, and per account its limits
and their current use (equity, the day's P&L, drawdown, gross exposure, open positions, orders
in the last minute); per subscription with limits, its trades today and losses in a row.

Built from a `RiskLimits`' figures: the daemon's own (through the Operator), or one seeded from
the journal when no daemon runs. JSON-ready: amounts are strings (exact Decimals).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradepipe.core.limits import Amount, cooldown_ends_at
from tradepipe.core.tally import last_minute
from tradepipe.core.trading_states import ScopeKind
from tradepipe.engine.risk import RiskLimits
from tradepipe.journal.trading_states import StateRow


def _text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _amount(limit: Amount | int | None) -> str | None:
    if limit is None:
        return None
    if isinstance(limit, Amount):
        shown = _text(limit.value)
        return f"{shown}%" if limit.is_percent else shown
    return str(limit)


def in_force(rows: Iterable[StateRow], now: datetime) -> list[StateRow]:
    """The states not over by `now`, broadest scope first (as `TradingStates.listing`, without
    journaling the ends: for a reader of the journal)."""
    order = list(ScopeKind)
    live = [r for r in rows if r.state.until_at is None or now < r.state.until_at]
    return sorted(live, key=lambda r: (order.index(r.state.scope.kind), r.state.scope.name))


def state_view(row: StateRow) -> dict[str, Any]:
    state = row.state
    return {
        "scope": str(state.scope.kind),
        "name": state.scope.name,
        "state": str(state.state),
        "reason": state.reason,
        "source": row.source,
        "limit": row.limit,
        "figures": {k: _text(v) for k, v in row.figures.items()},
        "set_at": _when(row.set_at),
        "until_at": _when(state.until_at),
    }


def risk_report(risk: RiskLimits, states: list[StateRow]) -> dict[str, Any]:
    """The states in force, then each account's and limited subscription's limits and use."""
    now = risk.clock()
    config = risk.current.config
    accounts = []
    for name, settings in config.accounts.items():
        tally = risk.account_tally(name, now)
        limits = settings.risk
        values = risk.position_values(name)
        equity, start, mark = tally.equity, tally.day_start_equity, tally.high_water_mark
        if equity is not None and mark is not None:
            mark = max(mark, equity)

        def resolved(amount: Amount | None, start: Decimal | None = start) -> str | None:
            if amount is None or start is None:
                return None
            return _text(amount.resolve(start))

        accounts.append(
            {
                "account": name,
                "limits": {
                    "max_order_value": _amount(limits.max_order_value),
                    "max_open_positions": _amount(limits.max_open_positions),
                    "max_gross_exposure": _amount(limits.max_gross_exposure),
                    "max_daily_loss": _amount(limits.max_daily_loss),
                    "max_drawdown": _amount(limits.max_drawdown),
                    "max_orders_per_minute": _amount(limits.max_orders_per_minute),
                    "on_trip": limits.on_trip,
                    "day_starts_at": limits.day_starts_at,
                    "timezone": limits.timezone,
                },
                # Percent limits in the account's currency, at today's starting equity.
                "limits_resolved": {
                    "max_order_value": resolved(limits.max_order_value),
                    "max_gross_exposure": resolved(limits.max_gross_exposure),
                    "max_daily_loss": resolved(limits.max_daily_loss),
                    "max_drawdown": resolved(limits.max_drawdown),
                },
                "use": {
                    "equity": _text(equity),
                    "equity_at": _when(tally.equity_at),
                    "day_started_at": _when(tally.day_start),
                    "day_start_equity": _text(start),
                    "day_pnl": (
                        _text(equity - start) if equity is not None and start is not None else None
                    ),
                    "high_water_mark": _text(mark),
                    "drawdown": (
                        _text(mark - equity) if equity is not None and mark is not None else None
                    ),
                    "gross_exposure": _text(sum((abs(v) for v in values.values()), Decimal(0))),
                    "open_positions": len([v for v in values.values() if v != 0]),
                    "orders_last_minute": last_minute(tally.sent, now),
                },
            }
        )
    subscriptions = []
    for name in list(risk.subscriptions):
        if name not in config.subscriptions:
            continue
        mine = risk.limits_for(name).subscription
        figures = risk.subscription_figures(name)
        subscriptions.append(
            {
                "subscription": name,
                "account": config.subscriptions[name].account,
                "limits": {
                    "max_trades_per_day": mine.max_trades_per_day,
                    "max_consecutive_losses": mine.max_consecutive_losses,
                    "loss_cooldown": mine.loss_cooldown,
                },
                "use": {
                    "trades_today": figures.trades_today,
                    "consecutive_losses": figures.consecutive_losses,
                    "last_loss_at": _when(figures.last_loss_at),
                    "cooldown_ends_at": _when(cooldown_ends_at(figures, mine.loss_cooldown)),
                },
            }
        )
    return {
        "at": now.isoformat(),
        "states": [state_view(r) for r in states],
        "accounts": accounts,
        "subscriptions": subscriptions,
    }
